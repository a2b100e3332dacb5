#!/usr/bin/env bash
# Build the image debian:bookworm-slim locally from Debian packages, for machines that
# cannot pull from a registry: debootstrap (minbase) from the Debian mirror apt already
# uses on this host, trim it the way the official slim image is trimmed (no docs, man
# pages or locales; dpkg keeps them out of later installs too), and `docker import` it.
#
# Usage: image/make-base-image.sh [TAG]     (default TAG: debian:bookworm-slim)
# Environment: MIRROR=URL overrides the mirror read from /etc/apt; SUITE (bookworm);
#              FORCE=1 rebuilds even if TAG exists.
set -euo pipefail

TAG=${1:-debian:bookworm-slim}
SUITE=${SUITE:-bookworm}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG already present"
    exit 0
fi

# The first URI of an apt source that serves "$SUITE" (the main archive, not -security),
# from deb822 .sources files or one-line .list files.
find_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v suite="$SUITE" '
            /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri=""; ok=0; next }
            /^URIs:/   { uri=$2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok=1 }
            END { if (uri != "" && ok) print uri }' "$f" | head -n1
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk -v suite="$SUITE" '$1 == "deb" {
            i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) { print $i; exit } }' "$f"
    done
}

# The URI serving "$SUITE-security", if the host has one.
find_security() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v suite="$SUITE-security" '
            /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri=""; ok=0; next }
            /^URIs:/   { uri=$2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok=1 }
            END { if (uri != "" && ok) print uri }' "$f" | head -n1
    done
}

MIRROR=${MIRROR:-$(find_mirror | head -n1)}
SECURITY=${SECURITY:-$(find_security | head -n1)}
if [ -z "$MIRROR" ]; then
    echo "no apt source for $SUITE found in /etc/apt; set MIRROR=URL" >&2
    exit 1
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

ROOT=$(mktemp -d /var/tmp/qkdnet-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "debootstrap --variant=minbase $SUITE from $MIRROR into $ROOT"
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR"

# Slim: dpkg leaves documentation, man pages and translations out of every later install.
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
# Like the official -slim images: no docs, man pages or translations (copyright kept).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$ROOT"/usr/share/{man,groff,info,lintian,linda,locale}/*

# apt: no package cache or translations kept in layers; no recommends by default.
cat >"$ROOT/etc/apt/apt.conf.d/docker-slim" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::Install-Recommends "false";
EOF

# Sources: the same mirror (and security archive) as the host, deb822 like the official image.
rm -f "$ROOT/etc/apt/sources.list"
{
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$MIRROR" "$SUITE" "$SUITE"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [ -n "$SECURITY" ]; then
        printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$SECURITY" "$SUITE"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
} >"$ROOT/etc/apt/sources.list.d/debian.sources"

rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb
rm -rf "$ROOT"/var/log/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*
: >"$ROOT/etc/hostname"
: >"$ROOT/etc/resolv.conf"

echo "importing $ROOT as $TAG"
tar --numeric-owner --xattrs -C "$ROOT" -c . |
    docker import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --message "debootstrap --variant=minbase $SUITE $MIRROR (slimmed)" - "$TAG"
docker image inspect --format '{{.Id}} {{.Size}}' "$TAG"

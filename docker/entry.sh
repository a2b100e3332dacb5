#!/bin/sh
# Entry point of the qkdnet image: runs the container's command (its role), e.g.
#   python -m node_agent --topology /etc/qkdnet/paper.yaml --host tn1
# When the command is `python -m PKG ...` and PKG has no __main__ in this image (a daemon not
# written yet, or an image older than the topology), it logs one JSON line and sleeps instead
# of exiting, so that one missing role never crash-loops the whole compose project; the
# container stays up and reachable for `docker exec`. Any other command is run as is.
set -eu
if [ "$#" -ge 3 ] && [ "$2" = "-m" ]; then
    case "$1" in
    python | python3 | */python | */python3)
        if ! "$1" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1] + ".__main__") is None)' "$3" 2>/dev/null; then
            printf '{"level": "WARNING", "logger": "qkdnet-entry", "event": "no-daemon", "module": "%s", "host": "%s", "msg": "module has no __main__ in this image; sleeping instead"}\n' \
                "$3" "$(hostname)" >&2
            exec sleep infinity
        fi
        ;;
    esac
fi
exec "$@"

# One image for every role of the QKD-enabled GMPLS testbed; the role is the command:
#   python -m node_agent --topology /etc/qkdnet/paper.yaml --host tn1
#   python -m pce | qkd_proxy | idq3p_emulator ... (see docker-compose.yml, docs/docker.md)
#
# The project is installed from wheels built on the host (`make wheels` -> build/wheels), so
# nothing is fetched from PyPI during the build. Debian packages come from the base image's
# apt sources. `make image` builds debian:bookworm-slim locally (debootstrap) when it cannot
# be pulled; with a registry the same Dockerfile uses the official image.
ARG BASE=debian:bookworm-slim

# --- runtime: Debian's Python 3.11 and the tools a network engineer expects inside ----------
FROM ${BASE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# every stage carries it: `make image` prunes the dangling images of earlier builds by it
LABEL org.qkdnet.image="qkdnet"
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        python3 python3-venv iproute2 iputils-ping tcpdump nftables iptables procps telnet \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && python3 --version

# --- build: a venv filled from the host's wheels only (no index) ----------------------------
FROM runtime AS build
COPY build/wheels/ /tmp/wheels/
RUN python3 -m venv /opt/qkdnet \
 && /opt/qkdnet/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels qkdnet \
 && /opt/qkdnet/bin/python -c "import yaml, cryptography, pyroute2, docker, aiohttp, gmpls, daemonkit, compose"

# --- final: runtime + the venv, without the wheels ---------------------------------------
FROM runtime
LABEL org.opencontainers.image.title="qkdnet" \
      org.opencontainers.image.description="QKD-enabled GMPLS control plane testbed (one image, the role is the command)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/qkdnet /opt/qkdnet
COPY topologies/ /etc/qkdnet/
ENV PATH=/opt/qkdnet/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/qkdnet
CMD ["bash"]

# Sourced by the scripts that need root (the lab's namespaces, links and
# iptables): as root they go on; from another account they re-run
# themselves with sudo, or say how to run them when there is no sudo.
need_root() {
  [ "$(id -u)" = 0 ] && return 0
  if command -v sudo >/dev/null; then
    exec sudo -- "$@"
  fi
  echo "$(basename "$1"): needs root (network namespaces, iptables) and" \
       "this machine has no sudo: run it as root, e.g. su -c '$*'" >&2
  exit 1
}

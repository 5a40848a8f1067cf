# shellcheck shell=bash
# Network namespaces for the scripts that run our TAP programs beside the kernel's TCP
# (scripts/load.sh, scripts/tap-throughput.sh, scripts/tap-loss.sh); sourced, never run on its
# own. The caller deletes the namespaces at exit.

# A namespace `$1` with a TAP device tap0 whose kernel side is 192.168.69.100/24 (our programs
# take .1, their default).
ns_tap() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip -n "$1" tuntap add dev tap0 mode tap
  ip -n "$1" link set tap0 up
  ip -n "$1" addr add 192.168.69.100/24 dev tap0
}

# Two namespaces `$1` and `$2` joined by a veth pair whose ends are `$3` (192.168.70.1/24, in
# `$1`) and `$4` (192.168.70.2/24, in `$2`): the kernel against itself.
ns_veth() {
  ip netns add "$1"
  ip netns add "$2"
  ip -n "$1" link set lo up
  ip -n "$2" link set lo up
  ip link add "$3" netns "$1" type veth peer name "$4" netns "$2"
  ip -n "$1" addr add 192.168.70.1/24 dev "$3"
  ip -n "$2" addr add 192.168.70.2/24 dev "$4"
  ip -n "$1" link set "$3" up
  ip -n "$2" link set "$4" up
}

# Two namespaces `$1` and `$2`, each with a TAP device: tapa (192.168.71.1/24) in `$1`, tapb
# (192.168.71.2/24) in `$2`, to be joined by the relay (tools/src/bin/relay.rs, `--a tapa
# --a-netns $1 --b tapb --b-netns $2`): the kernel against itself over a link with faults. The
# devices are persistent, so relays may come and go; each has carrier while one has it open.
ns_relay() {
  ip netns add "$1"
  ip netns add "$2"
  ip -n "$1" link set lo up
  ip -n "$2" link set lo up
  ip -n "$1" tuntap add dev tapa mode tap
  ip -n "$2" tuntap add dev tapb mode tap
  ip -n "$1" addr add 192.168.71.1/24 dev tapa
  ip -n "$2" addr add 192.168.71.2/24 dev tapb
  ip -n "$1" link set tapa up
  ip -n "$2" link set tapb up
}

# Wait (at most 5 s) until `$1` (a command) succeeds.
await() {
  for _ in $(seq 500); do
    if eval "$1" > /dev/null 2>&1; then return 0; fi
    sleep 0.01
  done
  echo "$(basename "$0"): gave up waiting for: $1" >&2
  return 1
}

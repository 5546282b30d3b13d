#!/bin/bash
# sealdump kdump pre-hook: send /proc/vmcore, sealed, to a sealdump receiver from the kdump capture kernel.
#
# Install as /usr/lib/sealdump/sealdump-kdump-pre.sh and name it in /etc/kdump.conf:
#     kdump_pre /usr/lib/sealdump/sealdump-kdump-pre.sh
# (see docs/kdump.md). kdump_pre exit status: 0 = kdump goes on with its own dump target; anything else = kdump
# skips its dump and runs its final action (reboot/poweroff/halt).
#
# Settings (environment, or /etc/sealdump/kdump.env inside the initramfs):
#   SEALDUMP_PROVISION   provisioning file            (default /etc/sealdump/provision.toml)
#   SEALDUMP_SEND        sealdump-send binary         (default: first on PATH)
#   SEALDUMP_VMCORE      the dump                     (default /proc/vmcore)
#   SEALDUMP_TRIES       attempts (network may come up late)               (default 5)
#   SEALDUMP_RETRY_WAIT  seconds between attempts                          (default 5)
#   SEALDUMP_ALSO_LOCAL  1 = after a successful send, let kdump save its own copy too (default 0: a plaintext
#                        copy on local disk is exactly what sealing avoids)
#   SEALDUMP_FALLBACK_LOCAL 1 = if every attempt fails, let kdump save to its configured target (default 0)
#   SEALDUMP_ARGS        extra sealdump-send arguments, e.g. "--payload-size 8948" on a jumbo-frame network

[ -r /etc/sealdump/kdump.env ] && . /etc/sealdump/kdump.env

provision=${SEALDUMP_PROVISION:-/etc/sealdump/provision.toml}
send=${SEALDUMP_SEND:-$(command -v sealdump-send || echo /usr/bin/sealdump-send)}
vmcore=${SEALDUMP_VMCORE:-/proc/vmcore}
tries=${SEALDUMP_TRIES:-5}
retry_wait=${SEALDUMP_RETRY_WAIT:-5}

log() {
    # The console is what an operator watching a crashing machine sees; /dev/kmsg ends up in the capture log.
    echo "sealdump: $*" >&2
    [ -w /dev/kmsg ] && echo "<5>sealdump: $*" >/dev/kmsg 2>/dev/null
    return 0
}

# Exit status after a successful send: non-zero makes kdump skip its own (plaintext) dump.
done_status=1
[ "${SEALDUMP_ALSO_LOCAL:-0}" = 1 ] && done_status=0
# Exit status when the send failed: 0 lets kdump fall back to its own target.
fail_status=1
[ "${SEALDUMP_FALLBACK_LOCAL:-0}" = 1 ] && fail_status=0

if [ ! -r "$vmcore" ]; then
    log "no $vmcore: not running in a kdump capture kernel?"
    exit "$fail_status"
fi
if [ ! -x "$send" ]; then
    log "sealdump-send not found (was it installed into the kdump initramfs?)"
    exit "$fail_status"
fi
if [ ! -r "$provision" ]; then
    log "provisioning file $provision not found"
    exit "$fail_status"
fi

attempt=1
while [ "$attempt" -le "$tries" ]; do
    log "sending $vmcore (attempt $attempt of $tries)"
    # shellcheck disable=SC2086 # SEALDUMP_ARGS is a list of words on purpose
    "$send" --provision "$provision" ${SEALDUMP_ARGS:-} "$vmcore"
    status=$?
    case "$status" in
        0)
            log "dump sent and acknowledged"
            exit "$done_status"
            ;;
        1)
            # The receiver stopped answering mid-dump; a fresh attempt starts a new, complete dump.
            log "dump failed (receiver stopped answering)"
            ;;
        *)
            # Often the network is not up yet in the capture kernel: wait and retry.
            log "sealdump-send could not start (status $status)"
            ;;
    esac
    attempt=$((attempt + 1))
    [ "$attempt" -le "$tries" ] && sleep "$retry_wait"
done
log "giving up after $tries attempts"
exit "$fail_status"

#!/bin/bash
# dracut module "sealdump": puts sealdump-send, the provisioning file and the kdump pre-hook into an initramfs
# (the kdump capture initramfs, via `dracut_args --add sealdump` in /etc/kdump.conf), with networking.
# Install as /usr/lib/dracut/modules.d/99sealdump/module-setup.sh; see docs/kdump.md.

# Only when asked for (--add sealdump): never in the normal boot initramfs.
check() {
    require_binaries sealdump-send /usr/lib/sealdump/sealdump-kdump-pre.sh || return 1
    [ -r /etc/sealdump/provision.toml ] || return 1
    return 255
}

# The capture kernel must bring up a NIC (ip=... / rd.neednet=1 on its command line) before kdump_pre runs.
depends() {
    echo network
    return 0
}

install() {
    inst_binary sealdump-send
    inst_simple /etc/sealdump/provision.toml
    [ -r /etc/sealdump/kdump.env ] && inst_simple /etc/sealdump/kdump.env
    inst_script /usr/lib/sealdump/sealdump-kdump-pre.sh
    inst_multiple -o sleep
}

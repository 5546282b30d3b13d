//! Two network namespaces joined by one veth pair, for the tests that run as root: `sealdump-send` in one,
//! `sealdump-receiver` in the other, with a real kernel path between them.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use crate::bin;

/// Runs `ip netns exec NS ARGS…` (ARGS… here when `ns` is empty); returns its output, whatever its status.
pub fn ns_output(ns: &str, args: &[&str]) -> Output {
    let mut cmd = if ns.is_empty() {
        Command::new(args[0])
    } else {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(args[0]);
        c
    };
    cmd.args(&args[1..]).output().unwrap()
}

/// [`ns_output`] that panics with the command's stderr on failure; returns stdout.
pub fn ns_run(ns: &str, args: &[&str]) -> String {
    let out = ns_output(ns, args);
    assert!(
        out.status.success(),
        "{ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the first command that needs a kernel feature (`what`); if it fails, prints why the test is skipped.
pub fn capable(ns: &str, args: &[&str], what: &str) -> bool {
    let out = ns_output(ns, args);
    if !out.status.success() {
        eprintln!(
            "skipped: cannot create {what} here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out.status.success()
}

/// A client and a receiver namespace joined by a veth pair: `SUBNET.1/30` on the client's end, `SUBNET.2/30` on
/// the receiver's. Both namespaces (and so the pair) are deleted on drop.
#[derive(Debug)]
pub struct VethPair {
    /// The client's namespace.
    pub client: String,
    /// The receiver's namespace.
    pub receiver: String,
    /// The client's end of the pair.
    pub client_dev: String,
    /// The receiver's end of the pair.
    pub receiver_dev: String,
    subnet: String,
}

impl VethPair {
    /// Makes the pair, named after `tag` and this process, on `subnet` (three octets, e.g. `10.213.0`), with
    /// both ends and loopback up, at `mtu` if given. `None` (after printing why) if namespaces cannot be made.
    pub fn create(tag: &str, subnet: &str, mtu: Option<u32>) -> Option<VethPair> {
        let id = std::process::id() % 100_000;
        let pair = VethPair {
            client: format!("{tag}c{id}"),
            receiver: format!("{tag}r{id}"),
            client_dev: format!("{tag}vc{id}"),
            receiver_dev: format!("{tag}vr{id}"),
            subnet: subnet.to_string(),
        };
        if !capable("", &["ip", "netns", "add", &pair.client], "a network namespace") {
            return None;
        }
        ns_run("", &["ip", "netns", "add", &pair.receiver]);
        ns_run(
            "",
            &[
                "ip",
                "link",
                "add",
                &pair.client_dev,
                "netns",
                &pair.client,
                "type",
                "veth",
                "peer",
                "name",
                &pair.receiver_dev,
                "netns",
                &pair.receiver,
            ],
        );
        let mtu = mtu.map(|m| m.to_string());
        for (ns, dev, host) in [
            (&pair.client, &pair.client_dev, 1),
            (&pair.receiver, &pair.receiver_dev, 2),
        ] {
            ns_run(ns, &["ip", "link", "set", "lo", "up"]);
            ns_run(
                ns,
                &["ip", "addr", "add", &format!("{subnet}.{host}/30"), "dev", dev],
            );
            if let Some(mtu) = &mtu {
                ns_run(ns, &["ip", "link", "set", dev, "mtu", mtu]);
            }
            ns_run(ns, &["ip", "link", "set", dev, "up"]);
        }
        Some(pair)
    }

    /// The receiver's address on the pair.
    pub fn receiver_ip(&self) -> String {
        format!("{}.2", self.subnet)
    }

    /// `sealdump-send --client-port 0 -q ARGS…` in the client's namespace, waited for.
    pub fn send(&self, args: &[&OsStr]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.client])
            .arg(bin("sealdump-send"))
            .args(["--client-port", "0", "-q"])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.client, &self.receiver] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

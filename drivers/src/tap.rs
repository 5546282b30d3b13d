//! Linux TAP interfaces as smoltcp devices: a thin wrapper over smoltcp's `TunTapInterface` that checks the
//! name first and turns the bare `io::Error` of a failed open into a message that says what to do.
//!
//! A TAP carries Ethernet frames, so the whole stack (ARP, IPv4, UDP) runs in our process, exactly as on bare
//! metal; combine it with [`crate::phy::FaultInjector`] and [`crate::phy::PcapTap`] as needed.

use std::io;

use smoltcp::phy::Medium;
pub use smoltcp::phy::TunTapInterface;

/// Longest interface name Linux accepts (`IFNAMSIZ` - 1).
pub const MAX_NAME_LEN: usize = 15;

/// Why a TAP interface could not be opened.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name is empty, longer than 15 bytes, or contains '/', whitespace or NUL.
    #[error("invalid TAP interface name {0:?}: use 1-15 characters without '/', spaces or NUL")]
    BadName(String),
    /// The kernel refused to attach or create the interface.
    #[error("cannot open TAP interface {name}: {source}{hint}")]
    Open {
        /// The interface name.
        name: String,
        /// What the kernel said.
        #[source]
        source: io::Error,
        /// A hint about the usual cause, starting with "; " (may be empty).
        hint: &'static str,
    },
}

fn check_name(name: &str) -> Result<(), TapError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(TapError::BadName(name.to_owned()))
    }
}

fn hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::PermissionDenied => {
            "; needs CAP_NET_ADMIN, or a persistent TAP owned by this user \
             (ip tuntap add dev NAME mode tap user USER)"
        }
        io::ErrorKind::NotFound => "; /dev/net/tun is missing (modprobe tun)",
        io::ErrorKind::ResourceBusy => "; the interface is in use by another process",
        _ if err.raw_os_error() == Some(libc::EBUSY) => "; the interface is in use by another process",
        _ if err.raw_os_error() == Some(libc::EINVAL) => {
            "; an interface of that name exists and is not a TAP (a TUN or a physical NIC?)"
        }
        _ => "",
    }
}

/// Attaches to the TAP interface `name` (Ethernet medium), creating a non-persistent one if it does not
/// exist (that needs CAP_NET_ADMIN; a persistent TAP made for this user does not).
pub fn open_tap(name: &str) -> Result<TunTapInterface, TapError> {
    check_name(name)?;
    TunTapInterface::new(name, Medium::Ethernet).map_err(|source| TapError::Open {
        name: name.to_owned(),
        hint: hint(&source),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use smoltcp::phy::Device;

    #[test]
    fn rejects_bad_names_with_a_clear_message() {
        for bad in ["", "a-name-that-is-too-long", "a/b", "tap 0", "..", "x\0y"] {
            let err = open_tap(bad).unwrap_err();
            assert!(matches!(err, TapError::BadName(_)), "{bad:?}: {err}");
            assert!(err.to_string().starts_with("invalid TAP interface name"), "{err}");
        }
        assert!(check_name("tap0").is_ok());
        assert!(check_name("sealdump-tap012").is_ok());
    }

    #[test]
    fn open_errors_carry_a_hint() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(hint(&denied).contains("CAP_NET_ADMIN"));
        let err = TapError::Open {
            name: "tap0".into(),
            hint: hint(&denied),
            source: denied,
        };
        let msg = err.to_string();
        assert!(msg.starts_with("cannot open TAP interface tap0: "), "{msg}");
        assert!(!msg.contains('\n'));
        assert_eq!(
            hint(&io::Error::from_raw_os_error(libc::EBUSY)),
            "; the interface is in use by another process"
        );
    }

    /// Opens a throw-away TAP when the environment allows it (it vanishes when closed; no traffic is sent).
    #[test]
    fn opens_a_transient_tap_when_permitted() {
        let name = format!("sdw{}", std::process::id() % 1_000_000);
        match open_tap(&name) {
            Ok(tap) => {
                let caps = tap.capabilities();
                assert_eq!(caps.medium, Medium::Ethernet);
                // smoltcp reports the Ethernet frame size: the interface MTU plus the 14-byte header.
                assert!(caps.max_transmission_unit >= 1514, "{caps:?}");
            }
            Err(e @ TapError::Open { .. }) => {
                std::println!("note: no TAP in this environment, skipped the open check: {e}");
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
}

//! `provision`: writes a client provisioning file.

use std::fs::OpenOptions;
use std::io::Write;

use sealdump_crypto::keys::hex_lower;

use crate::cli::ProvisionArgs;
use crate::cmd::emit;
use crate::error::Error;
use crate::keyfile::load_public;
use crate::provision::Provisioning;

/// Runs `provision`: the file goes to `-o FILE` (never replaced without --force) or `out`.
pub fn run(args: &ProvisionArgs, out: &mut dyn Write, notes: &mut dyn Write) -> Result<(), Error> {
    let keys = args
        .recipients
        .iter()
        .map(|p| load_public(p, None))
        .collect::<Result<Vec<_>, _>>()?;
    let mut provisioning = Provisioning::new(&args.receivers, &keys)?;
    provisioning.aead = args.aead.clone();
    provisioning.chunk_shift = args.chunk_shift;
    provisioning.client_port = args.client_port;
    provisioning.client = args.client.clone();
    provisioning.gateway = args.gateway.clone();
    let text = provisioning.to_toml()?;

    match &args.output {
        None => emit(out, &text),
        Some(path) => {
            let io_err = |source| Error::Io {
                path: path.clone(),
                source,
            };
            let mut options = OpenOptions::new();
            options.write(true);
            if args.force {
                options.create(true).truncate(true);
            } else {
                options.create_new(true);
            }
            let mut file = options.open(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Exists(path.clone())
                } else {
                    io_err(e)
                }
            })?;
            file.write_all(text.as_bytes()).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            let ids: Vec<String> = keys.iter().map(|k| hex_lower(&k.key_id())).collect();
            let _ = writeln!(
                notes,
                "wrote {} (receiver {}, recipients {})",
                path.display(),
                provisioning.receiver.join(", "),
                ids.join(", ")
            );
            Ok(())
        }
    }
}

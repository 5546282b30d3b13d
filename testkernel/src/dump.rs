//! The panic-time dump: network up, client-core armed from the baked-in configuration, memory sent.

use sealdump_client_core::seal::{Metadata, Params, Recipient};
use sealdump_client_core::{
    Buffers, Client, Config, DEFAULT_PAYLOAD_SIZE, DEFAULT_WINDOW, Event, Instant, Mode, SlotState, TAG_LEN,
    chunk_buffer_len, tag_slots,
};
use sealdump_drivers::net as drivers_net;

use crate::cell::TakeOnce;
use crate::entropy::{self, Source};
use crate::exit::ExitCode;
use crate::{config, net, println, rtc, time};

const WINDOW: usize = DEFAULT_WINDOW;
const PAYLOAD: usize = DEFAULT_PAYLOAD_SIZE;
/// 64 KiB chunks (the format's default chunk_shift 16; plain mode's fixed chunk size too).
const CHUNK: usize = 1 << 16;
const TAGS: usize = tag_slots(WINDOW, PAYLOAD, CHUNK);

/// client-core's memory: about 143 KiB (per-packet state, two chunk buffers, seal header, tags), reserved in
/// .bss at build time. No packet bytes are kept: a retransmission of an older chunk reads the memory again.
struct ClientMemory {
    slot_state: [SlotState; WINDOW],
    chunks: [u8; chunk_buffer_len(CHUNK)],
    header: [u8; sealdump_client_core::HEADER_BUFFER_LEN],
    tags: [[u8; TAG_LEN]; TAGS],
}

static CLIENT_MEMORY: TakeOnce<ClientMemory> = TakeOnce::new(ClientMemory {
    slot_state: [SlotState::EMPTY; WINDOW],
    chunks: [0; chunk_buffer_len(CHUNK)],
    header: [0; sealdump_client_core::HEADER_BUFFER_LEN],
    tags: [[0; TAG_LEN]; TAGS],
});

/// Sends `memory` to the receiver; returns how the run should end.
pub fn dump(memory: &[u8], panic_string: &[u8]) -> ExitCode {
    let mut network = match net::bring_up(crate::arch::rdtsc()) {
        Ok(network) => network,
        Err(code) => return code,
    };
    let (mut rng, source) = entropy::rng(&network.device.mac_address());
    println!(
        "dump: entropy from {}",
        match source {
            Source::Rdrand => "RDRAND + timing jitter",
            Source::JitterOnly => "timing jitter only (no RDRAND on this CPU)",
        }
    );
    let Some(ClientMemory {
        slot_state,
        chunks,
        header,
        tags,
    }) = CLIENT_MEMORY.take()
    else {
        return ExitCode::NestedPanic;
    };
    let recipients;
    let mode = match config::RECIPIENT_X25519 {
        Some(public) => {
            recipients = [Recipient::X25519 { public }];
            Mode::Sealed {
                params: Params {
                    chunk_shift: CHUNK.trailing_zeros() as u8,
                    time: rtc::unix_time(),
                    ..Params::default()
                },
                recipients: &recipients,
                dump_key: None,
                metadata: Metadata {
                    hostname: b"sealdump-testkernel",
                    kernel_version: concat!("sealdump-testkernel ", env!("CARGO_PKG_VERSION")).as_bytes(),
                    panic_string,
                    architecture: b"amd64",
                    expected_length: memory.len() as u64,
                    host_uuid: [0; 16],
                },
            }
        }
        None => Mode::Plain,
    };
    let sealed = matches!(mode, Mode::Sealed { .. });
    let mut client_config = Config::new(net::receiver(), mode);
    client_config.window = WINDOW;
    client_config.payload_size = PAYLOAD;
    client_config.give_up_after = core::time::Duration::from_secs(config::GIVE_UP_SECS);
    let buffers = Buffers {
        slot_state,
        chunks,
        header,
        tags: &mut tags[..],
    };
    let start = time::now_micros();
    let mut client = match Client::new(client_config, buffers, &mut rng, Instant::from_micros(start)) {
        Ok(client) => client,
        Err(error) => {
            println!("dump: client-core refused its configuration: {error}");
            return ExitCode::ClientInit;
        }
    };
    println!(
        "dump: sending {} MiB {} to {}",
        memory.len() >> 20,
        if sealed {
            "sealed for 1 X25519 recipient"
        } else {
            "in plain"
        },
        net::receiver()
    );

    let step = (memory.len() as u64 / 8).max(1);
    let mut next_report = step;
    let mut on_event = |event: &Event| match event {
        Event::Connected { server } => println!("dump: receiver answered from {server}"),
        Event::Progress(stats) if stats.bytes_acked >= next_report => {
            println!("dump: {} MiB acknowledged", stats.bytes_acked >> 20);
            next_report = (stats.bytes_acked / step + 1) * step;
        }
        _ => {}
    };
    let mut clock = time::now_micros;
    let result = drivers_net::run_dump(
        &mut network.stack,
        &mut network.device,
        &mut client,
        memory,
        None,
        &mut clock,
        &mut on_event,
    );
    let elapsed_ms = ((time::now_micros() - start) / 1000).max(1);
    match result {
        Ok(stats) => {
            println!(
                "dump: done in {elapsed_ms} ms ({} KiB/s): {} packets, {} retransmits, srtt {} us; NIC {:?}",
                (memory.len() as u64 * 1000 / 1024) / elapsed_ms,
                stats.packets_sent,
                stats.retransmits,
                stats.srtt_us,
                network.device.stats()
            );
            ExitCode::Success
        }
        Err(error) => {
            println!("dump: failed after {elapsed_ms} ms: {error}");
            ExitCode::NetworkFailed
        }
    }
}

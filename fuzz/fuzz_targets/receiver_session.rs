//! The receiver's pure session logic fed arbitrary datagram sequences (mostly well-formed netdump messages with
//! fuzzed fields, plus raw bytes, foreign sources, time jumps and repeated heralds). Checked besides "never panics":
//! - the core ranges stay sorted and disjoint, their total equals the distinct bytes handed out as `Output::Core`,
//!   and `Output::Core` never hands out bytes already stored (a duplicate is only re-acked);
//! - a datagram from another IP address is always rejected;
//! - after FINISHED nothing but a repeated FINISHED is accepted;
//! - "complete" is never reported for a dump with holes.
#![no_main]

use core::net::SocketAddr;
use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use sealdump_receiver::session::{
    Closed, HeraldDecision, Instant, Output, Reject, Session, SessionConfig, State, parse_herald,
};

fn message(msg_type: u32, seqno: u32, offset: u64, payload: &[u8], aux2: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(24 + payload.len());
    v.extend_from_slice(&msg_type.to_be_bytes());
    v.extend_from_slice(&seqno.to_be_bytes());
    v.extend_from_slice(&offset.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(&aux2.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Reads the input a byte at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

/// Model of the distinct core bytes: merged, sorted intervals.
fn insert(model: &mut Vec<(u64, u64)>, start: u64, end: u64) -> u64 {
    if start >= end {
        return 0;
    }
    let before: u64 = model.iter().map(|(s, e)| e - s).sum();
    model.push((start, end));
    model.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(model.len());
    for &(s, e) in model.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *model = merged;
    model.iter().map(|(s, e)| e - s).sum::<u64>() - before
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let peer: SocketAddr = "192.0.2.5:20024".parse().expect("addr");
    let same_ip_other_port: SocketAddr = "192.0.2.5:4444".parse().expect("addr");
    let foreign: SocketAddr = "198.51.100.9:20024".parse().expect("addr");
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(5),
        linger: Duration::from_secs(2),
        max_payload: 2048,
        max_dump_size: 1 << 20,
        max_ranges: 16,
    };
    let herald_bytes = message(1, u32::from(input.u8()), 0, input.bytes(8), 0);
    let Ok(herald) = parse_herald(&herald_bytes) else {
        return;
    };
    let mut now = Instant::from_millis(0);
    let mut session = Session::new(config, now, peer, &herald);
    let mut model: Vec<(u64, u64)> = Vec::new();

    while !input.0.is_empty() {
        let op = input.u8();
        let from = match op >> 6 {
            0 | 1 => peer,
            2 => same_ip_other_port,
            _ => foreign,
        };
        let datagram = match op & 7 {
            0 => {
                let n = usize::from(input.u8());
                input.bytes(n).to_vec()
            }
            1..=4 => {
                let msg_type = u32::from(input.u8() % 7);
                let seqno = u32::from(input.u8());
                let offset = u64::from(input.u16()) * 64;
                let len = usize::from(input.u16() % 2100);
                let fill = input.u8();
                message(msg_type, seqno, offset, &vec![fill; len], 0)
            }
            5 => {
                // A seal header's magic at the key offset, to reach the sealed-stream checks.
                let mut payload = b"SEALDUMP".to_vec();
                payload.extend_from_slice(input.bytes(64));
                message(5, u32::from(input.u8()), 0, &payload, 0)
            }
            6 => {
                now = Instant::from_micros(now.as_micros() + u64::from(input.u16()) * 1000);
                let state_before = session.state();
                match session.handle_timeout(now) {
                    Some(Closed::TimedOut) => assert_eq!(state_before, State::Open),
                    Some(Closed::Done) => assert_eq!(state_before, State::Finished),
                    None => {}
                }
                continue;
            }
            _ => {
                let again = message(1, u32::from(input.u8()), 0, b"", 0);
                if let Ok(h) = parse_herald(&again)
                    && let HeraldDecision::Restart = session.handle_herald(now, from, &h)
                {
                    assert_ne!(session.state(), State::Open);
                }
                continue;
            }
        };

        let state_before = session.state();
        let peer_before = session.peer();
        let out = session.handle_datagram(now, from, &datagram);
        if from.ip() != peer_before.ip() {
            assert_eq!(out, Output::Rejected(Reject::ForeignSource));
        }
        if state_before != State::Open {
            assert!(
                matches!(out, Output::Rejected(_) | Output::Ack { .. }),
                "accepted {out:?} in state {state_before:?}"
            );
        }
        match out {
            Output::Core { offset, data, .. } => {
                let end = offset + data.len() as u64;
                assert!(end <= 1 << 20);
                let new = insert(&mut model, offset, end);
                assert!(
                    new > 0 || data.is_empty(),
                    "core bytes {offset}..{end} handed out twice"
                );
            }
            Output::Finished { complete, .. } => {
                assert_eq!(complete, session.is_complete());
                if complete {
                    assert!(session.holes().next().is_none());
                }
            }
            _ => {}
        }
        let ranges = session.core_ranges().ranges();
        assert!(
            ranges.windows(2).all(|w| w[0].1 < w[1].0),
            "ranges overlap or touch: {ranges:?}"
        );
        assert!(ranges.iter().all(|(s, e)| s < e));
        let model_total: u64 = model.iter().map(|(s, e)| e - s).sum();
        assert_eq!(session.core_ranges().total(), model_total);
        assert_eq!(session.stats().core_bytes, model_total);
        if session.is_complete() {
            assert!(matches!(session.state(), State::Finished | State::Done));
            assert!(session.holes().next().is_none() && session.key_holes().next().is_none());
        }
    }
});

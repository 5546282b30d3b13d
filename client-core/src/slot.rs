//! Per-packet bookkeeping of the send ring. No packet bytes are kept: a message is rebuilt from this record and
//! the client's buffers (or the caller's dump source) whenever it is sent.

/// Lifecycle of one ring slot.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Status {
    /// Holds nothing.
    Free,
    /// Queued and waiting for its first transmission.
    Queued,
    /// Sent, not yet acked.
    InFlight,
    /// Declared lost because later packets were acked: to be sent again.
    Lost,
    /// Declared lost because the retransmission timer fired: to be sent again.
    Expired,
    /// Acked; freed when every earlier packet is acked too.
    Acked,
}

/// State of one packet in the send ring. Callers only allocate these (`[SlotState::EMPTY; N]`, e.g. in a
/// `static`); the fields are private to the client.
#[derive(Copy, Clone, Debug)]
pub struct SlotState {
    pub(crate) status: Status,
    /// Message type (wire value): says where the payload comes from.
    pub(crate) msg_type: u8,
    /// How many times this packet was sent again (saturating).
    pub(crate) retransmits: u8,
    /// Why the latest send was a resend (meaningful only when `retransmits > 0`).
    pub(crate) resent_by: ResendCause,
    /// Payload length (without the 24-byte header).
    pub(crate) len: u32,
    /// Wire offset: the record-stream offset (VMCORE) or the seal header offset (EKCD_KEY); 0 otherwise.
    pub(crate) offset: u64,
    /// Transmission number of the latest send (monotonic over all sends, like a QUIC packet number).
    pub(crate) tx: u64,
    /// Time of the latest send, in microseconds.
    pub(crate) sent_at_us: u64,
}

/// What made a packet go out again.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum ResendCause {
    /// Later packets were acked (fast retransmit).
    LaterAcks,
    /// The retransmission timer fired.
    Timeout,
    /// A tail-loss probe: the newest packet sent again because no ack came for two round trips.
    Probe,
}

impl Status {
    /// Waiting to be sent again.
    pub(crate) fn is_lost(self) -> bool {
        matches!(self, Status::Lost | Status::Expired)
    }
}

impl SlotState {
    /// An unused slot.
    pub const EMPTY: SlotState = SlotState {
        status: Status::Free,
        msg_type: 0,
        retransmits: 0,
        resent_by: ResendCause::LaterAcks,
        len: 0,
        offset: 0,
        tx: 0,
        sent_at_us: 0,
    };
}

impl Default for SlotState {
    fn default() -> Self {
        Self::EMPTY
    }
}

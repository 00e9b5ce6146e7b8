//! The event-record decoder: a stored record of any bytes is either decoded or
//! refused as corrupt, never a panic. Most inputs are taken as a record's body
//! and wrapped in a valid header (format byte and chain hash), so that the
//! fuzzer reaches the event decoding behind the hash check; a decoded event
//! re-encodes to a record that decodes to the same envelope.

#![no_main]

use beamd_events::envelope::{chain_hash, decode_record, encode_record};
use beamd_events::GENESIS_HASH;
use libfuzzer_sys::fuzz_target;

const SEQ: u64 = 7;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let record = if mode == 0 {
        // The raw record, header and all.
        rest.to_vec()
    } else {
        let mut record = vec![1u8];
        record.extend_from_slice(&GENESIS_HASH);
        record.extend_from_slice(&chain_hash(&GENESIS_HASH, rest));
        record.extend_from_slice(rest);
        record
    };
    let Ok(envelope) = decode_record(SEQ, &record) else {
        return;
    };
    let (hash, again) = encode_record(
        envelope.seq,
        envelope.at,
        &envelope.stream,
        envelope.version,
        &envelope.event,
        &envelope.prev_hash,
    )
    .expect("a decoded event encodes");
    let decoded = decode_record(SEQ, &again).expect("a re-encoded record decodes");
    assert_eq!(decoded.hash, hash);
    assert_eq!(decoded.event, envelope.event);
    assert_eq!(decoded.stream, envelope.stream);
    assert_eq!(
        (decoded.seq, decoded.at, decoded.version),
        (envelope.seq, envelope.at, envelope.version)
    );
});

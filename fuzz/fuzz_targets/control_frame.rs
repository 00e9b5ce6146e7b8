//! The control-frame decoder: any bytes read from an agent or an edge either
//! decode to frames or fail with an error, never a panic, and a frame that
//! decodes encodes back to itself.

#![no_main]

use std::sync::OnceLock;

use beamd_protocol::{read_frame, write_frame, AgentFrame, EdgeFrame, StreamHeader, MAX_FRAME};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Reads frames of type `T` until the input is used up or one fails.
async fn frames<T>(mut input: &[u8])
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    while let Ok(frame) = read_frame::<T>(&mut input).await {
        let mut encoded = Vec::new();
        match write_frame(&mut encoded, &frame).await {
            Ok(()) => {
                assert!(encoded.len() <= MAX_FRAME + 4);
                let again: T = read_frame(&mut encoded.as_slice())
                    .await
                    .expect("an encoded frame decodes");
                assert_eq!(again, frame, "a frame survives a round trip");
            }
            // A frame may re-encode larger than it arrived (rmp widens
            // nothing, but named fields cost more than positional ones).
            Err(beamd_protocol::ProtocolError::TooLarge(_)) => {}
            Err(e) => panic!("a decoded frame does not encode: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    runtime().block_on(async {
        match kind % 3 {
            0 => frames::<AgentFrame>(rest).await,
            1 => frames::<EdgeFrame>(rest).await,
            _ => frames::<StreamHeader>(rest).await,
        }
    });
});

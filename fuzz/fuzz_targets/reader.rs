//! Feeds arbitrary bytes to the recording reader: opening, reading every capture and IMU sample
//! both ways, seeking, the info summary and repair must return errors, never panic, and never
//! allocate more than the input justifies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    freek4a::playback::exercise::read_everything(data);
});

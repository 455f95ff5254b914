//! Every read path of the reader on one input, for fuzzing: the cargo-fuzz target
//! (`fuzz/fuzz_targets/reader.rs`) and the mutation trial in the test suite call this one
//! function, so both exercise the same code.

use std::io::Cursor;

use super::info::RecordingInfo;
use super::{repair, Origin, Playback};

/// Opens `data` as a recording and reads it every way the API allows: captures and IMU samples
/// forwards and backwards, seeks from each origin, the info summary, and a repair whose output
/// is read back. Errors are expected and ignored; a panic is a bug.
pub fn read_everything(data: &[u8]) {
    let Ok(mut pb) = Playback::from_reader(Cursor::new(data.to_vec())) else {
        return;
    };
    let _ = pb.recording_length_usec();
    let mut n = 0;
    while let Ok(Some(_)) = pb.next_capture() {
        n += 1;
        if n > 10_000 {
            break;
        }
    }
    while let Ok(Some(_)) = pb.previous_capture() {}
    while let Ok(Some(_)) = pb.next_imu_sample() {}
    while let Ok(Some(_)) = pb.previous_imu_sample() {}
    for (t, o) in [
        (0, Origin::Begin),
        (-1000, Origin::End),
        (1_000_000, Origin::DeviceTime),
    ] {
        if pb.seek(t, o).is_ok() {
            let _ = pb.next_capture();
            let _ = pb.next_imu_sample();
        }
    }
    let _ = RecordingInfo::from_playback(&mut pb).map(|i| i.to_string());
    let mut out = Vec::new();
    if repair::repair_to(&mut pb, &mut out).is_ok() {
        // What repair writes must itself read back.
        let _ = Playback::from_reader(Cursor::new(out)).map(|mut p| p.next_capture().is_ok());
    }
}

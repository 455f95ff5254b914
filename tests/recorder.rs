//! Integration tests: the recorder binaries end to end on emulated units, judged by Microsoft's playback.

//! Colour images the emulated camera shows: eight colour bars with a bright square that
//! moves from frame to frame.
//!
//! The bottom band is a one-pixel checkerboard (texture for the JPEG encoder, see
//! `in_detail_band`).
//!
//! MJPEG frames are real JPEGs. Encoding a 4096×3072 JPEG for every frame would cost more than
//! the camera's frame period, so a few frames per resolution are encoded once per process and
//! cycled; each carries an APP segment with a frame counter that is patched per frame, so
//! consecutive frames still differ byte-wise. NV12 and YUY2 frames are drawn per frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Number of distinct MJPEG frames encoded per resolution.
pub const MJPEG_CYCLE: usize = 4;

/// Marker bytes of the APP5 segment holding the frame counter.
const COUNTER_TAG: &[u8; 6] = b"FK4AFC";

/// Colour bars in full-range RGB: white, yellow, cyan, green, magenta, red, blue, black.
/// MJPEG (JFIF) carries full-range YCbCr, so its frames decode back to these values; NV12 and
/// YUY2 carry limited-range BT.601 video levels ([`rgb_to_video_yuv`]), which decoders expand
/// to the same full range. All three formats therefore show the same colours.
const BARS_RGB: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

/// Fraction of the height (from the bottom) taken by the fine checkerboard band.
const DETAIL_BAND_DIVISOR: u32 = 8;

/// Full-range RGB to limited-range ("video", 16–235 luma, 16–240 chroma) BT.601 YCbCr, the
/// levels uncompressed UVC formats carry.
fn rgb_to_video_yuv([r, g, b]: [u8; 3]) -> (u8, u8, u8) {
    let (r, g, b) = (r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let u = -0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let v = 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    let c = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    (
        c(16.0 + 219.0 * y),
        c(128.0 + 224.0 * u),
        c(128.0 + 224.0 * v),
    )
}

/// True inside the bottom band of one-pixel black and white checks. Its detail is what a
/// real scene's texture gives a JPEG: an entropy-coded scan full of long Huffman codes, so
/// `0xFF` bytes (stuffed with `0x00`) occur in every frame. A scan of flat colour bars alone
/// can have none, and ffmpeg then misses the EOI marker of a valid JPEG ("EOI missing").
fn in_detail_band(y: u32, height: u32) -> bool {
    y >= height - height / DETAIL_BAND_DIVISOR
}

fn detail_is_white(x: u32, y: u32) -> bool {
    (x ^ y) & 1 == 0
}

/// Square of the moving element for frame `n`: (x0, y0, side) in pixels.
pub fn square_for_frame(width: u32, height: u32, n: u64) -> (u32, u32, u32) {
    let side = (height / 6).max(2) & !1;
    let span_x = width - side;
    let span_y = height - side;
    let x = ((n * 37) % (span_x as u64).max(1)) as u32 & !1;
    let y = ((n * 23) % (span_y as u64).max(1)) as u32 & !1;
    (x, y, side)
}

fn bar_at(x: u32, width: u32) -> usize {
    ((x as u64 * 8) / width as u64).min(7) as usize
}

/// An RGB image of the test pattern for frame `n`.
pub fn pattern_rgb(width: u32, height: u32, n: u64) -> Vec<u8> {
    let (sx, sy, side) = square_for_frame(width, height, n);
    let mut row = Vec::with_capacity(width as usize * 3);
    for x in 0..width {
        row.extend_from_slice(&BARS_RGB[bar_at(x, width)]);
    }
    let mut out = Vec::with_capacity(row.len() * height as usize);
    for y in 0..height {
        let start = out.len();
        if in_detail_band(y, height) {
            out.extend((0..width).flat_map(|x| [if detail_is_white(x, y) { 255 } else { 0 }; 3]));
        } else {
            out.extend_from_slice(&row);
        }
        if y >= sy && y < sy + side {
            let a = start + sx as usize * 3;
            out[a..a + side as usize * 3].fill(255);
        }
    }
    out
}

/// Draws the test pattern for frame `n` as NV12 into `out` (resized to w×h×3/2).
pub fn draw_nv12(width: u32, height: u32, n: u64, out: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    out.clear();
    out.resize(w * h * 3 / 2, 0);
    let (sx, sy, side) = square_for_frame(width, height, n);
    let yuv: Vec<(u8, u8, u8)> = (0..width)
        .map(|x| rgb_to_video_yuv(BARS_RGB[bar_at(x, width)]))
        .collect();
    let (luma, chroma) = out.split_at_mut(w * h);
    for y in 0..h {
        let row = &mut luma[y * w..(y + 1) * w];
        if in_detail_band(y as u32, height) {
            for (x, p) in row.iter_mut().enumerate() {
                *p = if detail_is_white(x as u32, y as u32) {
                    235
                } else {
                    16
                };
            }
        } else {
            for (x, p) in row.iter_mut().enumerate() {
                *p = yuv[x].0;
            }
        }
        if (y as u32) >= sy && (y as u32) < sy + side {
            row[sx as usize..(sx + side) as usize].fill(235);
        }
    }
    for cy in 0..h / 2 {
        let row = &mut chroma[cy * w..(cy + 1) * w];
        for cx in 0..w / 2 {
            let (_, u, v) = yuv[cx * 2];
            let inside = (cy as u32 * 2) >= sy
                && (cy as u32 * 2) < sy + side
                && (cx as u32 * 2) >= sx
                && (cx as u32 * 2) < sx + side;
            let grey = inside || in_detail_band(cy as u32 * 2, height);
            let (u, v) = if grey { (128, 128) } else { (u, v) };
            row[cx * 2] = u;
            row[cx * 2 + 1] = v;
        }
    }
}

/// Draws the test pattern for frame `n` as YUY2 into `out` (resized to w×h×2).
pub fn draw_yuy2(width: u32, height: u32, n: u64, out: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    out.clear();
    out.resize(w * h * 2, 0);
    let (sx, sy, side) = square_for_frame(width, height, n);
    let mut row = vec![0u8; w * 2];
    for x in (0..w).step_by(2) {
        let (y0, u, v) = rgb_to_video_yuv(BARS_RGB[bar_at(x as u32, width)]);
        let (y1, _, _) = rgb_to_video_yuv(BARS_RGB[bar_at(x as u32 + 1, width)]);
        row[x * 2..x * 2 + 4].copy_from_slice(&[y0, u, y1, v]);
    }
    // Detail rows: even rows start white, odd rows black (YUY2 pairs start on even columns).
    let detail = [[235, 128, 16, 128], [16, 128, 235, 128]];
    for y in 0..h {
        let dst = &mut out[y * w * 2..(y + 1) * w * 2];
        if in_detail_band(y as u32, height) {
            for px in dst.chunks_exact_mut(4) {
                px.copy_from_slice(&detail[y & 1]);
            }
        } else {
            dst.copy_from_slice(&row);
        }
        if (y as u32) >= sy && (y as u32) < sy + side {
            for px in dst[sx as usize * 2..(sx + side) as usize * 2].chunks_exact_mut(4) {
                px.copy_from_slice(&[235, 128, 235, 128]);
            }
        }
    }
}

/// One pre-encoded JPEG and where its frame counter lives.
#[derive(Debug)]
pub struct EncodedJpeg {
    /// The JPEG bytes.
    pub bytes: Vec<u8>,
    /// Offset of the 4-byte little-endian frame counter inside `bytes`.
    pub counter_offset: usize,
}

/// Pre-encoded MJPEG frames for one resolution.
pub type JpegSet = Arc<Vec<EncodedJpeg>>;

/// Encodes one JPEG of the test pattern for frame `n`.
pub fn encode_jpeg(
    width: u32,
    height: u32,
    n: u64,
) -> Result<EncodedJpeg, jpeg_encoder::EncodingError> {
    let rgb = pattern_rgb(width, height, n);
    let mut bytes = Vec::with_capacity(width as usize * height as usize / 4);
    let mut enc = jpeg_encoder::Encoder::new(&mut bytes, 75);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_2);
    let mut app = COUNTER_TAG.to_vec();
    app.extend_from_slice(&0u32.to_le_bytes());
    enc.add_app_segment(5, &app)?;
    enc.encode(
        &rgb,
        width as u16,
        height as u16,
        jpeg_encoder::ColorType::Rgb,
    )?;
    let counter_offset = bytes
        .windows(COUNTER_TAG.len())
        .position(|w| w == COUNTER_TAG)
        .map(|p| p + COUNTER_TAG.len())
        .ok_or(jpeg_encoder::EncodingError::BadImageData {
            length: 0,
            required: 0,
        })?;
    Ok(EncodedJpeg {
        bytes,
        counter_offset,
    })
}

/// The process-wide cache of pre-encoded frames, filled on first use of a resolution.
pub fn jpeg_set(width: u32, height: u32) -> Result<JpegSet, jpeg_encoder::EncodingError> {
    static CACHE: OnceLock<Mutex<HashMap<(u32, u32), JpegSet>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(s) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(width, height))
    {
        return Ok(s.clone());
    }
    // Encode outside the lock; a concurrent first use at worst encodes twice.
    let mut frames = Vec::with_capacity(MJPEG_CYCLE);
    for n in 0..MJPEG_CYCLE as u64 {
        frames.push(encode_jpeg(width, height, n * 8)?);
    }
    let set = Arc::new(frames);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((width, height), set.clone());
    Ok(set)
}

/// Writes frame `n`'s JPEG (cycled from `set`, counter patched) into `out`.
pub fn mjpeg_frame(set: &JpegSet, n: u64, out: &mut Vec<u8>) {
    let j = &set[(n % set.len() as u64) as usize];
    out.clear();
    out.extend_from_slice(&j.bytes);
    out[j.counter_offset..j.counter_offset + 4].copy_from_slice(&(n as u32).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_decodes_and_counter_is_patched() {
        let set = jpeg_set(64, 48).unwrap();
        let mut a = Vec::new();
        let mut b = Vec::new();
        mjpeg_frame(&set, 0, &mut a);
        mjpeg_frame(&set, 4, &mut b);
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
        let mut d = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(&b));
        let px = d.decode().unwrap();
        assert_eq!(px.len(), 64 * 48 * 3);
    }

    #[test]
    fn raw_frames_have_the_right_sizes() {
        let mut v = Vec::new();
        draw_nv12(1280, 720, 3, &mut v);
        assert_eq!(v.len(), 1_382_400);
        assert_eq!(v[0], rgb_to_video_yuv(BARS_RGB[0]).0);
        draw_yuy2(1280, 720, 3, &mut v);
        assert_eq!(v.len(), 1_843_200);
    }

    #[test]
    fn video_levels_for_raw_formats() {
        assert_eq!(rgb_to_video_yuv([255, 255, 255]), (235, 128, 128));
        assert_eq!(rgb_to_video_yuv([0, 0, 0]), (16, 128, 128));
        assert_eq!(rgb_to_video_yuv([0, 0, 255]).1, 240);
        assert_eq!(rgb_to_video_yuv([255, 0, 0]).2, 240);
        let mut v = Vec::new();
        draw_nv12(1280, 720, 0, &mut v);
        let luma = &v[..1280 * 720];
        assert_eq!(luma.iter().min(), Some(&16));
        assert_eq!(luma.iter().max(), Some(&235));
        draw_yuy2(1280, 720, 0, &mut v);
        let luma: Vec<u8> = v.iter().step_by(2).copied().collect();
        assert_eq!(luma.iter().min(), Some(&16));
        assert_eq!(luma.iter().max(), Some(&235));
    }

    /// Bytes stuffed after `0xFF` in the entropy-coded scan (between SOS and EOI).
    fn stuffed_bytes(jpeg: &[u8]) -> usize {
        let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let len = u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]) as usize;
        let scan = &jpeg[sos + 2 + len..jpeg.len() - 2];
        assert_eq!(&jpeg[jpeg.len() - 2..], [0xFF, 0xD9], "EOI");
        scan.windows(2).filter(|w| w == &[0xFF, 0x00]).count()
    }

    #[test]
    fn every_mjpeg_frame_is_full_range_with_a_textured_scan() {
        for (w, h) in [
            (1280, 720),
            (1920, 1080),
            (2560, 1440),
            (2048, 1536),
            (3840, 2160),
            (4096, 3072),
        ] {
            let set = jpeg_set(w, h).unwrap();
            for (i, j) in set.iter().enumerate() {
                // ffmpeg resumes its marker search after a scan at the scan's length less the
                // stuffing it removed; without stuffing it lands past the FF of the EOI.
                let n = stuffed_bytes(&j.bytes);
                assert!(n >= 64, "{w}x{h} frame {i}: only {n} stuffed bytes");
            }
            if w == 1280 {
                let mut d = zune_jpeg::JpegDecoder::new(
                    zune_jpeg::zune_core::bytestream::ZCursor::new(&set[0].bytes),
                );
                let px = d.decode().unwrap();
                let (lo, hi) = (px.iter().min().unwrap(), px.iter().max().unwrap());
                assert!(*lo <= 3 && *hi >= 252, "decoded range {lo}..{hi}");
            }
        }
    }
}

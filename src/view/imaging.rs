//! Images people can look at: colourised depth with a known millimetre range, normalised IR,
//! colour images as RGB, and their PNG/JPEG encodings. Shared by the viewer and
//! `freek4a extract --preview`, so a depth colour means the same distance in both.

use crate::types::{DepthMode, Image, ImageFormat};

/// Why an image could not be turned into something viewable.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// The image holds fewer bytes than its format and size need.
    #[error("{format} image of {width}x{height} holds {len} bytes")]
    Size {
        /// SDK name of the format.
        format: &'static str,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Bytes present.
        len: usize,
    },
    /// The operation does not apply to this format.
    #[error("{0} images cannot be shown this way")]
    Format(&'static str),
    /// The PNG encoder failed.
    #[error("PNG encoding: {0}")]
    Png(#[from] png::EncodingError),
    /// The JPEG encoder failed.
    #[error("JPEG encoding: {0}")]
    Jpeg(#[from] jpeg_encoder::EncodingError),
    /// The stored JPEG does not decode.
    #[error("JPEG decoding: {0}")]
    JpegDecode(String),
}

/// The distances a colour scale spans: `min_mm` maps to the first colour, `max_mm` to the last;
/// 0 (no measurement) is black.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DepthRange {
    /// Nearest distance of the scale, mm.
    pub min_mm: u16,
    /// Farthest distance of the scale, mm.
    pub max_mm: u16,
}

impl DepthRange {
    /// The operating range Microsoft documents for a depth mode (the distances the mode
    /// measures), used so colours stay the same from frame to frame and file to file.
    pub fn for_mode(mode: DepthMode) -> Option<DepthRange> {
        let (min_mm, max_mm) = match mode {
            DepthMode::NfovUnbinned => (500, 3860),
            DepthMode::Nfov2x2Binned => (500, 5460),
            DepthMode::WfovUnbinned => (250, 2210),
            DepthMode::Wfov2x2Binned => (250, 2880),
            DepthMode::Off | DepthMode::PassiveIr => return None,
        };
        Some(DepthRange { min_mm, max_mm })
    }

    /// `500-3860mm`, for file names and legends.
    pub fn label(&self) -> String {
        format!("{}-{}mm", self.min_mm, self.max_mm)
    }
}

/// Anchors of the depth colour scale, near to far: dark blue, blue, cyan, green, yellow, red,
/// dark red. Evenly spaced over the range and interpolated linearly.
const SCALE: [[u8; 3]; 7] = [
    [30, 20, 140],
    [20, 90, 250],
    [20, 210, 230],
    [60, 220, 60],
    [250, 230, 30],
    [240, 60, 20],
    [130, 10, 10],
];

/// The colour of a distance on `range`'s scale (0: black; beyond the ends: the end colours).
pub fn depth_color(mm: u16, range: DepthRange) -> [u8; 3] {
    if mm == 0 {
        return [0, 0, 0];
    }
    let span = f32::from(range.max_mm.saturating_sub(range.min_mm).max(1));
    let f = ((f32::from(mm) - f32::from(range.min_mm)) / span).clamp(0.0, 1.0);
    let pos = f * (SCALE.len() - 1) as f32;
    let i = (pos as usize).min(SCALE.len() - 2);
    let t = pos - i as f32;
    let (a, b) = (SCALE[i], SCALE[i + 1]);
    std::array::from_fn(|c| {
        (f32::from(a[c]) + (f32::from(b[c]) - f32::from(a[c])) * t).round() as u8
    })
}

fn samples16(image: &Image) -> Result<impl Iterator<Item = u16> + '_, ImagingError> {
    let n = image.width as usize * image.height as usize;
    if image.data.len() < n * 2 {
        return Err(size_error(image));
    }
    Ok(image.data[..n * 2]
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]])))
}

fn size_error(image: &Image) -> ImagingError {
    ImagingError::Size {
        format: image.format.sdk_name(),
        width: image.width,
        height: image.height,
        len: image.data.len(),
    }
}

/// A DEPTH16 image as RGB on `range`'s colour scale.
pub fn colorize_depth(image: &Image, range: DepthRange) -> Result<Vec<u8>, ImagingError> {
    if image.format != ImageFormat::Depth16 {
        return Err(ImagingError::Format(image.format.sdk_name()));
    }
    // One lookup per millimetre value is cheaper than interpolating every pixel.
    let lut: Vec<[u8; 3]> = (0..=range.max_mm.saturating_add(1))
        .map(|mm| depth_color(mm, range))
        .collect();
    let far = depth_color(u16::MAX, range);
    Ok(samples16(image)?
        .flat_map(|mm| lut.get(usize::from(mm)).copied().unwrap_or(far))
        .collect())
}

/// An IR16 (or DEPTH16) image as 8-bit grey, stretched so that the brightest 1 % saturates:
/// raw IR values use a small part of the 16-bit range and look black unscaled.
pub fn normalize_ir(image: &Image) -> Result<Vec<u8>, ImagingError> {
    if !matches!(image.format, ImageFormat::Ir16 | ImageFormat::Depth16) {
        return Err(ImagingError::Format(image.format.sdk_name()));
    }
    let mut hist = vec![0u32; 65536];
    let mut n = 0u64;
    for v in samples16(image)? {
        hist[usize::from(v)] += 1;
        n += 1;
    }
    let mut top = 0usize;
    let mut seen = 0u64;
    let limit = n - n / 100;
    for (v, c) in hist.iter().enumerate() {
        seen += u64::from(*c);
        if seen >= limit.max(1) {
            top = v;
            break;
        }
    }
    let top = top.max(1) as u32;
    Ok(samples16(image)?
        .map(|v| ((u32::from(v) * 255 + top / 2) / top).min(255) as u8)
        .collect())
}

/// BT.601 limited-range YUV to RGB.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// NV12 (Y plane, then interleaved U/V at half resolution) to RGB; empty when too short.
pub fn nv12_to_rgb(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    if data.len() < w * h * 3 / 2 {
        return Vec::new();
    }
    let (ys, uv) = data.split_at(w * h);
    let mut out = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for col in 0..w {
            let c = (row / 2) * w + (col / 2) * 2;
            out.extend_from_slice(&yuv_to_rgb(ys[row * w + col], uv[c], uv[c + 1]));
        }
    }
    out
}

/// YUY2 (Y0 U Y1 V) to RGB; empty when too short.
pub fn yuy2_to_rgb(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    if data.len() < w * h * 2 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(w * h * 3);
    for quad in data[..w * h * 2].chunks_exact(4) {
        let (y0, u, y1, v) = (quad[0], quad[1], quad[2], quad[3]);
        out.extend_from_slice(&yuv_to_rgb(y0, u, v));
        out.extend_from_slice(&yuv_to_rgb(y1, u, v));
    }
    out
}

/// A colour image as RGB (MJPEG decoded).
pub fn color_to_rgb(image: &Image) -> Result<Vec<u8>, ImagingError> {
    let (w, h) = (image.width as usize, image.height as usize);
    let rgb = match image.format {
        ImageFormat::Mjpg => {
            let mut d = zune_jpeg::JpegDecoder::new(
                zune_jpeg::zune_core::bytestream::ZCursor::new(&image.data),
            );
            d.decode()
                .map_err(|e| ImagingError::JpegDecode(e.to_string()))?
        }
        ImageFormat::Nv12 => nv12_to_rgb(&image.data, w, h),
        ImageFormat::Yuy2 => yuy2_to_rgb(&image.data, w, h),
        ImageFormat::Bgra32 => image
            .data
            .chunks_exact(4)
            .take(w * h)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect(),
        ImageFormat::Depth16 | ImageFormat::Ir16 => {
            return Err(ImagingError::Format(image.format.sdk_name()))
        }
    };
    if rgb.len() != w * h * 3 {
        return Err(size_error(image));
    }
    Ok(rgb)
}

/// A colour image as BGRA, 4 bytes a pixel with alpha 255 (the layout of the geometry layer's
/// colour inputs).
pub fn color_to_bgra(image: &Image) -> Result<Vec<u8>, ImagingError> {
    if image.format == ImageFormat::Bgra32 {
        let len = image.width as usize * image.height as usize * 4;
        return match image.data.get(..len) {
            Some(px) => Ok(px.to_vec()),
            None => Err(size_error(image)),
        };
    }
    Ok(color_to_rgb(image)?
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0], 255])
        .collect())
}

/// Encodes 8-bit RGB (3 bytes a pixel) or grey (1 byte) as PNG.
pub fn png_8bit(pixels: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ImagingError> {
    let channels = if pixels.len() == width as usize * height as usize {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    };
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(channels);
    enc.set_depth(png::BitDepth::Eight);
    // Previews are made per request: favour speed over size.
    enc.set_compression(png::Compression::Fastest);
    let mut w = enc.write_header()?;
    w.write_image_data(pixels)?;
    w.finish()?;
    Ok(out)
}

/// Encodes 8-bit RGB as a JPEG of the given quality (1–100).
pub fn jpeg_rgb(rgb: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, ImagingError> {
    let (w, h) = (
        u16::try_from(width).map_err(|_| ImagingError::Format("oversized"))?,
        u16::try_from(height).map_err(|_| ImagingError::Format("oversized"))?,
    );
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality).encode(
        rgb,
        w,
        h,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

/// A horizontal legend for `range`: the colour scale, `width`×`height` RGB pixels, near on the
/// left.
pub fn depth_legend(range: DepthRange, width: u32, height: u32) -> Vec<u8> {
    let row: Vec<u8> = (0..width)
        .flat_map(|x| {
            let f = f64::from(x) / f64::from(width.saturating_sub(1).max(1));
            let mm = f64::from(range.min_mm) + f * f64::from(range.max_mm - range.min_mm);
            depth_color(mm.round().max(1.0) as u16, range)
        })
        .collect();
    row.repeat(height as usize)
}

/// The 8-bit previews of one capture, for files: depth colourised (with the range it used) and
/// IR normalised; `None` where the capture has no such image.
pub struct Previews {
    /// Colourised depth PNG and its range.
    pub depth: Option<(Vec<u8>, DepthRange)>,
    /// Normalised IR PNG.
    pub ir: Option<Vec<u8>>,
}

/// Makes the previews of a depth and an IR image for a depth mode.
pub fn previews(
    depth: Option<&Image>,
    ir: Option<&Image>,
    mode: DepthMode,
) -> Result<Previews, ImagingError> {
    let range = DepthRange::for_mode(mode).unwrap_or(DepthRange {
        min_mm: 250,
        max_mm: 5460,
    });
    let depth = depth
        .map(|d| -> Result<_, ImagingError> {
            Ok((
                png_8bit(&colorize_depth(d, range)?, d.width, d.height)?,
                range,
            ))
        })
        .transpose()?;
    let ir = ir
        .map(|i| png_8bit(&normalize_ir(i)?, i.width, i.height))
        .transpose()?;
    Ok(Previews { depth, ir })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image16(format: ImageFormat, values: &[u16]) -> Image {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Image::new(format, values.len() as u32, 1, 0, data)
    }

    #[test]
    fn depth_scale_ends_and_invalid() {
        let r = DepthRange {
            min_mm: 500,
            max_mm: 3860,
        };
        assert_eq!(depth_color(0, r), [0, 0, 0]);
        assert_eq!(depth_color(500, r), SCALE[0]);
        assert_eq!(depth_color(100, r), SCALE[0]);
        assert_eq!(depth_color(3860, r), SCALE[6]);
        assert_eq!(depth_color(60000, r), SCALE[6]);
        // The middle of the scale is the middle anchor.
        assert_eq!(depth_color(2180, r), SCALE[3]);
        let img = image16(ImageFormat::Depth16, &[0, 500, 2180, 65535]);
        let rgb = colorize_depth(&img, r).unwrap();
        assert_eq!(&rgb[..], &[0, 0, 0, 30, 20, 140, 60, 220, 60, 130, 10, 10]);
    }

    #[test]
    fn ir_is_stretched_to_its_bright_end() {
        let mut v = vec![300u16; 99];
        v.push(900);
        let g = normalize_ir(&image16(ImageFormat::Ir16, &v)).unwrap();
        assert_eq!(g[0], 255);
        assert_eq!(g[99], 255);
        let v: Vec<u16> = (0..200).collect();
        let g = normalize_ir(&image16(ImageFormat::Ir16, &v)).unwrap();
        assert_eq!(g[0], 0);
        assert!(g[100] > 120 && g[100] < 135, "{}", g[100]);
    }

    #[test]
    fn short_images_are_errors_not_panics() {
        let mut img = image16(ImageFormat::Depth16, &[1, 2, 3]);
        img.data.truncate(3);
        assert!(matches!(
            colorize_depth(&img, DepthRange::for_mode(DepthMode::NfovUnbinned).unwrap()),
            Err(ImagingError::Size { .. })
        ));
        assert!(normalize_ir(&Image {
            format: ImageFormat::Ir16,
            ..img.clone()
        })
        .is_err());
        img.format = ImageFormat::Nv12;
        assert!(color_to_rgb(&img).is_err());
        img.format = ImageFormat::Mjpg;
        assert!(matches!(
            color_to_rgb(&img),
            Err(ImagingError::JpegDecode(_))
        ));
    }

    #[test]
    fn yuv_reference_colours() {
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        let red = yuv_to_rgb(81, 90, 240);
        assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{red:?}");
    }

    #[test]
    fn nv12_and_yuy2_agree_on_a_flat_image() {
        let (w, h) = (4, 2);
        let mut nv12 = vec![100u8; w * h];
        nv12.extend_from_slice(&[60, 200].repeat(w * h / 4));
        let yuy2 = [100u8, 60, 100, 200].repeat(w * h / 2);
        assert_eq!(nv12_to_rgb(&nv12, w, h), yuy2_to_rgb(&yuy2, w, h));
        assert_eq!(nv12_to_rgb(&nv12, w, h).len(), w * h * 3);
        assert!(nv12_to_rgb(&nv12[..5], w, h).is_empty());
    }

    #[test]
    fn png_and_jpeg_round_trip() {
        let rgb = depth_legend(
            DepthRange {
                min_mm: 500,
                max_mm: 3860,
            },
            16,
            4,
        );
        let png = png_8bit(&rgb, 16, 4).unwrap();
        let mut dec = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut buf = vec![0; dec.output_buffer_size().unwrap()];
        dec.next_frame(&mut buf).unwrap();
        assert_eq!(buf, rgb);
        let jpg = jpeg_rgb(&rgb, 16, 4, 90).unwrap();
        assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
    }
}

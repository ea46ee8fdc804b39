//! Login codes published as an image (other dashboards send a PNG data URL,
//! `data:image/png;base64,...`): the PNG is decoded and the QR code read from its
//! pixels, so the control room redraws the same code as terminal blocks.

use base64::Engine;

/// The data URL prefix of a base64 PNG.
pub const PNG_DATA_URL: &str = "data:image/png;base64,";

/// Largest data URL read, in bytes: a login code's PNG is a few kilobytes.
const MAX_URL_BYTES: usize = 2 * 1024 * 1024;
/// Largest image side read, in pixels.
const MAX_SIDE: u32 = 4096;

/// The text of the QR code in a PNG data URL; what is wrong otherwise.
pub fn decode_data_url(url: &str) -> Result<String, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("an image of {} bytes is too large", url.len()));
    }
    let Some(b64) = url.strip_prefix(PNG_DATA_URL) else {
        let kind = url.split([';', ',']).next().unwrap_or("data:");
        return Err(format!(
            "{} is not a PNG data URL: only data:image/png;base64 is read",
            kind.chars().take(40).collect::<String>()
        ));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("the PNG is not base64: {e}"))?;
    let (width, height, grey) = greyscale(&bytes)?;
    read_code(width, height, &grey)
}

/// The PNG's pixels as 8-bit luminance, transparency laid over white.
fn greyscale(png_bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    let limits = png::Limits {
        bytes: 64 * 1024 * 1024,
    };
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(png_bytes), limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let (w, h) = (reader.info().width, reader.info().height);
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!("a {w}x{h} image is too large for a login code"));
    }
    let size = reader
        .output_buffer_size()
        .ok_or("the PNG's size overflows")?;
    let mut buf = vec![0; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let channels = frame.color_type.samples();
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut grey = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = &buf[y * frame.line_size..];
        for x in 0..w {
            let px = &row[x * channels..x * channels + channels];
            let (luma, alpha) = match px {
                [g] => (u32::from(*g), 255),
                [g, a] => (u32::from(*g), u32::from(*a)),
                [r, g, b] => (
                    (u32::from(*r) * 299 + u32::from(*g) * 587 + u32::from(*b) * 114) / 1000,
                    255,
                ),
                [r, g, b, a] => (
                    (u32::from(*r) * 299 + u32::from(*g) * 587 + u32::from(*b) * 114) / 1000,
                    u32::from(*a),
                ),
                _ => return Err("an unexpected PNG pixel layout".into()),
            };
            // Over white: a transparent pixel is a light module.
            let over_white = (luma * alpha + 255 * (255 - alpha)) / 255;
            grey.push(u8::try_from(over_white).unwrap_or(u8::MAX));
        }
    }
    Ok((w, h, grey))
}

/// The text of the first QR code found in a greyscale image.
fn read_code(width: usize, height: usize, grey: &[u8]) -> Result<String, String> {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        grey.get(y * width + x).copied().unwrap_or(255)
    });
    let grids = img.detect_grids();
    let grid = grids.first().ok_or("no QR code found in the image")?;
    grid.decode()
        .map(|(_, text)| text)
        .map_err(|e| format!("the QR code in the image cannot be read: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG of `code` drawn as the dashboards do: black modules on white, 4 px each.
    fn png_of(code: &str) -> Vec<u8> {
        let grid = secondme_ui::widgets::qr::modules(code).expect("encodable");
        let scale = 4;
        let side = grid.len() * scale;
        let mut pixels = Vec::with_capacity(side * side);
        for y in 0..side {
            for x in 0..side {
                pixels.push(if grid[y / scale][x / scale] { 0 } else { 255 });
            }
        }
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().expect("header");
        w.write_image_data(&pixels).expect("data");
        w.finish().expect("finish");
        out
    }

    #[test]
    fn a_png_data_url_gives_back_its_code() {
        let code = "2@png-dialect,abc,def";
        let url = format!(
            "{PNG_DATA_URL}{}",
            base64::engine::general_purpose::STANDARD.encode(png_of(code))
        );
        assert_eq!(decode_data_url(&url).as_deref(), Ok(code));
    }

    #[test]
    fn anything_else_is_reported() {
        let e = decode_data_url("data:image/jpeg;base64,AAAA").expect_err("jpeg");
        assert!(e.contains("data:image/jpeg"), "{e}");
        let e = decode_data_url(&format!("{PNG_DATA_URL}%%%")).expect_err("not base64");
        assert!(e.contains("not base64"), "{e}");
        let not_png = base64::engine::general_purpose::STANDARD.encode(b"GIF89a....");
        let e = decode_data_url(&format!("{PNG_DATA_URL}{not_png}")).expect_err("gif");
        assert!(e.contains("not a readable PNG"), "{e}");
        let blank = {
            let mut out = Vec::new();
            let mut enc = png::Encoder::new(&mut out, 40, 40);
            enc.set_color(png::ColorType::Grayscale);
            let mut w = enc.write_header().expect("header");
            w.write_image_data(&[255; 1600]).expect("data");
            w.finish().expect("finish");
            out
        };
        let url = format!(
            "{PNG_DATA_URL}{}",
            base64::engine::general_purpose::STANDARD.encode(blank)
        );
        assert_eq!(
            decode_data_url(&url),
            Err("no QR code found in the image".into())
        );
    }
}

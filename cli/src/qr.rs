//! `culvert export --qr`: a wg-quick file as a QR code drawn in the terminal, for the WireGuard mobile apps,
//! which import tunnels by scanning one.
//!
//! Two rows of modules make one line of text (the half blocks `▀ ▄ █`), and the colours are set, black behind
//! and white ink for the light modules, as `qrencode -t ansiutf8` does: a scanner needs dark modules on light,
//! whatever the terminal's own colours are.

use qrcode::{Color, QrCode};

/// The margin of light modules around the code that the QR specification asks for.
const QUIET_ZONE: usize = 4;
/// White ink on a black background, and back to the terminal's own colours.
const COLOURS: &str = "\x1b[40;97m";
const RESET: &str = "\x1b[0m";

/// `code` drawn in the terminal, one string of lines.
pub fn draw(code: &QrCode) -> String {
    let width = code.width();
    let size = width + 2 * QUIET_ZONE;
    let light = |x: usize, y: usize| {
        let inside = (QUIET_ZONE..QUIET_ZONE + width).contains(&x) && (QUIET_ZONE..QUIET_ZONE + width).contains(&y);
        !inside || code[(x - QUIET_ZONE, y - QUIET_ZONE)] == Color::Light
    };
    let mut out = String::with_capacity(size * size * 2);
    for y in (0..size).step_by(2) {
        out.push_str(COLOURS);
        for x in 0..size {
            // Below the last row is outside the code: light, as the quiet zone is.
            out.push(match (light(x, y), y + 1 >= size || light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push_str(RESET);
        out.push('\n');
    }
    out
}

mod common;

use common::*;
use ratatui::style::Color;
use secondme_ui::widgets::qr::{QUIET_ZONE, render_lines};
use secondme_ui::{Event, update};

/// Turns half-block rows back into a module matrix (`true` = dark).
fn decode(lines: &[String]) -> Vec<Vec<bool>> {
    let mut grid = Vec::new();
    for line in lines {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for ch in line.chars() {
            let (t, b) = match ch {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected glyph {other:?}"),
            };
            top.push(t);
            bottom.push(b);
        }
        grid.push(top);
        grid.push(bottom);
    }
    grid
}

fn expected(payload: &str) -> Vec<Vec<bool>> {
    let code = qrcode::QrCode::new(payload.as_bytes()).expect("encodable");
    let w = code.width();
    let n = w + 2 * QUIET_ZONE;
    let colors = code.to_colors();
    (0..n)
        .map(|y| {
            (0..n)
                .map(|x| {
                    let inside = (QUIET_ZONE..QUIET_ZONE + w).contains(&x)
                        && (QUIET_ZONE..QUIET_ZONE + w).contains(&y);
                    inside && colors[(y - QUIET_ZONE) * w + (x - QUIET_ZONE)] == qrcode::Color::Dark
                })
                .collect()
        })
        .collect()
}

#[test]
fn half_blocks_decode_to_the_qr_modules() {
    for payload in ["hello", "2@abc,def,ghi,jkl", &"x".repeat(300)] {
        let lines = render_lines(payload).expect("render");
        let mut grid = decode(&lines);
        let want = expected(payload);
        // An odd module count leaves one padding row, which must be light.
        if grid.len() > want.len() {
            let pad = grid.pop().expect("padding row");
            assert!(pad.iter().all(|d| !d));
        }
        assert_eq!(grid, want, "payload {payload:?}");
    }
}

#[test]
fn quiet_zone_is_light() {
    let lines = render_lines("hello").expect("render");
    let grid = decode(&lines);
    let n = grid[0].len();
    for row in grid.iter().take(QUIET_ZONE) {
        assert!(row.iter().all(|d| !d));
    }
    for row in &grid {
        assert!(row[..QUIET_ZONE].iter().all(|d| !d));
        assert!(row[n - QUIET_ZONE..].iter().all(|d| !d));
    }
}

#[test]
fn too_long_payload_is_an_error() {
    assert!(render_lines(&"x".repeat(5000)).is_err());
}

#[test]
fn overlay_cells_are_black_on_white_and_match_lines() {
    let mut m = empty();
    update(
        &mut m,
        Event::QrEvent {
            payload: "hello".into(),
            expires_in_s: 60,
        },
    );
    let t = draw(&m, 80, 24);
    let buf = t.backend().buffer();
    let lines = render_lines("hello").expect("render");
    let (w, h) = (lines[0].chars().count() as u16, lines.len() as u16);
    // Overlay is centred with a one-cell border.
    let x0 = (80 - (w + 2)) / 2 + 1;
    let y0 = (24 - (h + 2)) / 2 + 1;
    for (row, line) in lines.iter().enumerate() {
        for (col, ch) in line.chars().enumerate() {
            let cell = &buf[(x0 + col as u16, y0 + row as u16)];
            assert_eq!(cell.symbol(), ch.to_string(), "at {col},{row}");
            assert_eq!(cell.fg, Color::Black);
            assert_eq!(cell.bg, Color::White);
        }
    }
}

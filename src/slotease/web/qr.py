"""QR codes for the pages (MFA enrollment), drawn in the server: no third party sees them."""

from __future__ import annotations

import segno


def qr_svg(uri: str) -> str:
    """`uri` (an otpauth URI) as an inline SVG QR code."""
    svg: str = segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff")
    return svg

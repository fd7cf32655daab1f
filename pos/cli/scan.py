"""`pos scan FILE...`: what the scanner reads from images or a video, one line per code.

For staff when a label will not scan at the till: it shows the symbology, the text and what the
till would make of it (product GTIN, weighed item and its price, guide badge, payment code...),
and says plainly when nothing could be read or a file could not be opened."""

from __future__ import annotations

from pathlib import Path

import click

VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mjpg", ".mjpeg"}


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--all-frames",
    is_flag=True,
    help="For a video: list every sighting, not once per code held in view.",
)
def scan(files: tuple[Path, ...], all_frames: bool) -> None:
    """Read barcodes and QR codes in image or video FILES and print what they mean."""
    from scanner import (
        CameraSource,
        Debouncer,
        ImageFileSource,
        ScanPipeline,
        SourceError,
    )
    from scanner.text import escape_non_graphical

    found = 0
    problems = 0
    for path in files:
        if not path.exists():
            click.echo(f"{path}: no such file", err=True)
            problems += 1
            continue
        if path.is_dir():
            click.echo(f"{path}: is a folder; name the image or video files in it", err=True)
            problems += 1
            continue
        video = path.suffix.lower() in VIDEO_SUFFIXES
        source = CameraSource(str(path), live=False) if video else ImageFileSource([path])
        debouncer = (
            Debouncer(repeat_after=0.0, gone_after=0.0, confirm_1d=1) if all_frames else None
        )
        pipeline = ScanPipeline(source, debouncer=debouncer)
        count = 0
        try:
            for event in pipeline:
                count += 1
                where = f"{path}"
                if video and pipeline.last_frame is not None:
                    where += f" frame {pipeline.last_frame.index}"
                text = escape_non_graphical(event.text)
                click.echo(f"{where}: {event.symbology or '?'}: {text}  [{event.describe()}]")
        except SourceError as exc:
            click.echo(f"{path}: cannot read this file ({exc})", err=True)
            problems += 1
            continue
        if pipeline.rejected:
            reason = pipeline.last_rejection.reason if pipeline.last_rejection else ""
            click.echo(f"{path}: {pipeline.rejected} code(s) seen but refused ({reason})", err=True)
        if count == 0:
            what = "video" if video else "image"
            click.echo(
                f"{path}: no code could be read in this {what}. Try a sharper, closer, "
                "better lit picture, or type the number printed under the bars.",
                err=True,
            )
            problems += 1
        found += count
    if problems:
        raise SystemExit(1)

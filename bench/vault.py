"""Benchmark of the encrypted media vault, end to end; prints ONE JSON object.

Figures, each with its goal and `meets_goal`:

* encrypt / decrypt throughput of the STREAM format as a ratio to bare AES-256-GCM on the same
  data in the same run (goal >= 0.5), from bench/vault_crypto.py;
* latency of 1 MiB range reads at random offsets in a 2 GiB recording (goal p99 < 20 ms), with
  the library on a local file (bench/vault_crypto.py) and through the real media endpoint
  (`GET /recordings/<id>/media` with `Range: bytes=a-b`, gunicorn on loopback), each first with
  the object dropped from the page cache ("cold") and then again ("warm");
* tus upload of a 1 GiB WAV on loopback to the real server, PATCH bodies streamed from disk, as a
  ratio to copying the same file on the same disk (shutil.copyfile + fsync) (goal >= 0.5), with
  the upload time reported apart from finalize (verify all + probe + store, until READY);
* the server worker's peak RSS during that upload and finalize (goal < 250 MB), and during a
  128 MiB upload, to show it does not grow with the file.

Usage: .venv/bin/python bench/vault.py [--quick] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cryptography
from _server import (
    MIB,
    Prepared,
    RssSampler,
    Server,
    auth_headers,
    gc_pauses,
    hwm_kib,
    mb,
    prepare,
    server_env,
    write_tone_wav,
)
from vault_crypto import percentiles, range_latency, throughput

GIB = 1024 * MIB
TUS = {"Tus-Resumable": "1.0.0"}
PATCH_BYTES = 16 * MIB  # a tus-js-client chunkSize a clinic might configure
# The final PATCH carries only this much, so its time is (almost all) finalize.
FINAL_PATCH_BYTES = MIB
RSS_GOAL_MB = 250
# "Does not grow with size": the big upload may peak at most this much above the small one
# (allocator noise; a buffer that scaled with the file would add hundreds of MB).
RSS_GROWTH_LIMIT_MB = 25
SEED = 2015


# ---- sizes -------------------------------------------------------------------------------------

def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"crypto_mib": 64, "crypto_runs": 2, "object_bytes": 256 * MIB, "reads": 50,
                "upload_small": 64 * MIB, "upload_large": 256 * MIB}
    return {"crypto_mib": 256, "crypto_runs": 3, "object_bytes": 2 * GIB, "reads": 500,
            "upload_small": 128 * MIB, "upload_large": GIB}


def figure(value: float, unit: str, goal: str, meets: bool, **more: Any) -> dict[str, Any]:
    return {"value": value, "unit": unit, "goal": goal, "meets_goal": meets, **more}


# ---- range reads through the media endpoint ----------------------------------------------------

def _get_range(server: Server, cookie: str, path: str, start: int, length: int) -> float:
    """Seconds for one ranged GET, from connecting until the last body byte is read."""
    began = time.perf_counter()
    conn = server.connection()
    try:
        conn.request("GET", path, headers=auth_headers(
            cookie, Range=f"bytes={start}-{start + length - 1}"))
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    took = time.perf_counter() - began
    if response.status != 206 or len(body) != length:
        raise RuntimeError(f"range GET answered {response.status} with {len(body)} bytes")
    return took


def http_range_reads(server: Server, prepared: Prepared, reads: int) -> dict[str, Any]:
    path = f"/recordings/{prepared.recording}/media"
    rng = random.Random(SEED)  # noqa: S311 - benchmark offsets, not secrets
    offsets = [rng.randrange(prepared.recording_size - MIB) for _ in range(reads)]
    # The first request of a fresh worker imports views and fills caches: reported, not sampled.
    first = _get_range(server, prepared.cookie, path, 0, MIB)
    fd = os.open(prepared.object_path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # "cold": read from the device
    finally:
        os.close(fd)
    gc_pauses(server.gc_log)  # only what happens during the timed reads counts
    gc.disable()  # a pause in this process is not the server's latency
    try:
        cold = [_get_range(server, prepared.cookie, path, offset, MIB) for offset in offsets]
        warm = [_get_range(server, prepared.cookie, path, offset, MIB) for offset in offsets]
    finally:
        gc.enable()
    return {
        "object_gib": round(prepared.recording_size / GIB, 2),
        "reads": reads,
        "range_bytes": MIB,
        "first_request_ms": round(first * 1000, 2),
        "cold": _latency(cold),
        "warm": _latency(warm),
        "worker_gc_during_reads": gc_pauses(server.gc_log),
    }


def _latency(samples: list[float]) -> dict[str, float]:
    return {**percentiles(samples), "over_20ms": sum(1 for s in samples if s >= 0.020)}


# ---- tus upload ---------------------------------------------------------------------------------

def _file_pieces(fd: int, offset: int, length: int) -> Iterator[bytes]:
    """A PATCH body read from disk 1 MiB at a time (never the whole body in memory)."""
    end = offset + length
    while offset < end:
        piece = os.pread(fd, min(MIB, end - offset), offset)
        if not piece:
            raise RuntimeError("the source file is shorter than expected")
        offset += len(piece)
        yield piece


def _patch(server: Server, cookie: str, path: str, fd: int, offset: int, length: int) -> int:
    conn = server.connection(timeout=600)
    try:
        conn.request("PATCH", path, body=_file_pieces(fd, offset, length),
                     headers=auth_headers(cookie, **TUS, **{
                         "Upload-Offset": str(offset), "Content-Length": str(length),
                         "Content-Type": "application/offset+octet-stream"}))
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 204:
        raise RuntimeError(f"PATCH answered {response.status}: {body[:300]!r}")
    return int(response.getheader("Upload-Offset") or -1)


def _create(server: Server, prepared: Prepared, size: int) -> str:
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in {"session": prepared.session, "kind": "audio"}.items())
    status, headers, body = server.request("POST", "/uploads/", auth_headers(
        prepared.cookie, **TUS, **{"Upload-Length": str(size), "Upload-Metadata": meta}))
    if status != 201:
        raise RuntimeError(f"creating the upload answered {status}: {body[:300]!r}")
    return "/" + headers["Location"].split("/", 3)[3]


def _recording_state(db: Path, upload_path: str) -> tuple[str, str]:
    """(recording id hex, state), looked up from outside the app."""
    upload_hex = uuid.UUID(upload_path.rstrip("/").rsplit("/", 1)[1]).hex
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        row = conn.execute(
            "SELECT r.public_id, r.state FROM recordings_upload u JOIN recordings_recording r "
            "ON r.id = u.recording_id WHERE u.public_id = ?", (upload_hex,)).fetchone()
    if row is None:
        raise RuntimeError("the upload has no recording")
    return str(row[0]), str(row[1])


def _state_of(db: Path, recording_hex: str) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        row = conn.execute("SELECT state FROM recordings_recording WHERE public_id = ?",
                           (recording_hex,)).fetchone()
    return str(row[0]) if row else "gone"


def tus_upload(server: Server, prepared: Prepared, db: Path, source: Path) -> dict[str, Any]:
    size = source.stat().st_size
    worker = server.worker()
    assert worker is not None
    fd = os.open(source, os.O_RDONLY)
    try:
        with RssSampler(worker) as sampler:
            sampler.phase = "upload"
            began = time.perf_counter()
            path = _create(server, prepared, size)
            recording_hex, _ = _recording_state(db, path)
            offset, patches = 0, 0
            while offset < size - FINAL_PATCH_BYTES:
                length = min(PATCH_BYTES, size - FINAL_PATCH_BYTES - offset)
                offset = _patch(server, prepared.cookie, path, fd, offset, length)
                patches += 1
            uploaded = time.perf_counter()
            sampler.phase = "finalize"
            offset = _patch(server, prepared.cookie, path, fd, offset, size - offset)
            deadline = time.monotonic() + 600
            while (state := _state_of(db, recording_hex)) not in ("ready", "failed"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the recording did not become READY in time")
                time.sleep(0.05)
            finished = time.perf_counter()
    finally:
        os.close(fd)
    if offset != size or state != "ready":
        raise RuntimeError(f"upload ended at {offset} of {size} bytes in state {state}")
    upload_s = uploaded - began
    peak = max(sampler.peaks_kib.values())
    return {
        "size_mib": size // MIB,
        "patch_mib": PATCH_BYTES // MIB,
        "patches": patches + 1,
        "upload_s": round(upload_s, 2),
        "upload_mb_s": round((size - FINAL_PATCH_BYTES) / upload_s / 1e6, 1),
        "finalize_s": round(finished - uploaded, 2),
        "rss_samples": sampler.samples,
        "peak_rss_mb": mb(peak),
        "peak_rss_upload_mb": mb(sampler.peaks_kib.get("upload", 0)),
        "peak_rss_finalize_mb": mb(sampler.peaks_kib.get("finalize", 0)),
        "worker_vmhwm_mb": mb(hwm_kib(worker)),
    }


def copy_baseline(source: Path, directory: Path) -> float:
    """Seconds to copy `source` on the same disk and make the copy durable."""
    target = directory / "copy.wav"
    os.sync()  # neither side pays for writing back what an earlier step left dirty
    began = time.perf_counter()
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    took = time.perf_counter() - began
    target.unlink()
    return took


def make_wav(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        write_tone_wav(out, size)
        out.flush()
        os.fsync(out.fileno())  # so the copy's fsync flushes only the copy


def server_part(root: Path, plan: dict[str, int]) -> dict[str, Any]:
    env = server_env(root)
    began = time.perf_counter()
    prepared = prepare(root, env, plan["object_bytes"])
    prepare_s = time.perf_counter() - began
    server = Server(env, root)
    server.start()
    try:
        worker = server.worker()
        assert worker is not None
        idle_kib = hwm_kib(worker)
        uploads = {}
        for label in ("upload_small", "upload_large"):
            source = root / f"{label}.wav"
            make_wav(source, plan[label])
            copy_s = copy_baseline(source, root)
            os.sync()
            result = tus_upload(server, prepared, root / "db.sqlite3", source)
            result["copy_s"] = round(copy_s, 2)
            result["copy_mb_s"] = round(plan[label] / copy_s / 1e6, 1)
            result["upload_ratio_to_copy"] = round(result["upload_mb_s"] / result["copy_mb_s"], 3)
            uploads[label] = result
            source.unlink()
        ranges = http_range_reads(server, prepared, plan["reads"])
    finally:
        server.stop()
    # The same reads from a worker that froze the GC after start-up: an experiment showing where
    # the tail latency comes from (full collections of the whole heap), not a goal figure.
    frozen = Server(env, root, freeze_gc=True)
    frozen.start()
    try:
        ranges_frozen = http_range_reads(frozen, prepared, plan["reads"])
    finally:
        frozen.stop()
    return {"prepare_s": round(prepare_s, 1), "worker_idle_rss_mb": mb(idle_kib),
            "uploads": uploads, "http_range_reads": ranges,
            "experiment_http_range_reads_gc_frozen": ranges_frozen}


# ---- the report ---------------------------------------------------------------------------------

def figures(crypto: dict[str, Any], library: dict[str, Any],
            served: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "encrypt_ratio_to_raw_aesgcm": figure(
            crypto["encrypt_ratio_to_raw"], "ratio", ">= 0.5",
            crypto["encrypt_ratio_to_raw"] >= 0.5),
        "decrypt_ratio_to_raw_aesgcm": figure(
            crypto["decrypt_ratio_to_raw"], "ratio", ">= 0.5",
            crypto["decrypt_ratio_to_raw"] >= 0.5),
    }
    for where, source in (("library", library), ("http", served["http_range_reads"])):
        for cache in ("cold", "warm"):
            found = source[cache]
            out[f"range_read_1mib_{where}_{cache}_p99_ms"] = figure(
                found["p99_ms"], "ms", "p99 < 20 ms", found["p99_ms"] < 20,
                p50_ms=found["p50_ms"], max_ms=found["max_ms"])
    large, small = served["uploads"]["upload_large"], served["uploads"]["upload_small"]
    out["tus_upload_ratio_to_copy"] = figure(
        large["upload_ratio_to_copy"], "ratio", ">= 0.5", large["upload_ratio_to_copy"] >= 0.5,
        size_mib=large["size_mib"], upload_s=large["upload_s"], finalize_s=large["finalize_s"],
        upload_mb_s=large["upload_mb_s"], copy_mb_s=large["copy_mb_s"])
    for label, found in (("large", large), ("small", small)):
        out[f"server_peak_rss_mb_{label}_upload"] = figure(
            found["peak_rss_mb"], "MB", f"< {RSS_GOAL_MB} MB",
            found["peak_rss_mb"] < RSS_GOAL_MB, size_mib=found["size_mib"])
    growth = round(large["peak_rss_mb"] - small["peak_rss_mb"], 1)
    out["server_rss_growth_mb_small_to_large"] = figure(
        growth, "MB", f"< {RSS_GROWTH_LIMIT_MB} MB (independent of file size)",
        growth < RSS_GROWTH_LIMIT_MB)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes (256 MiB recording, 64/256 MiB uploads), < 1 minute")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temp files go (the disk being measured)")
    args = parser.parse_args()
    plan = sizes(args.quick)
    started = time.perf_counter()
    crypto = throughput(plan["crypto_mib"] * MIB, plan["crypto_runs"])
    library = range_latency(args.dir, plan["object_bytes"], plan["reads"])
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="vault-bench-") as tmp:
        served = server_part(Path(tmp), plan)
    found = figures(crypto, library, served)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "cryptography": cryptography.__version__, "platform": platform.platform()},
        "all_goals_met": all(item["meets_goal"] for item in found.values()),
        "figures": found,
        "details": {"crypto_throughput": crypto, "library_range_reads": library, **served},
        "seconds": round(time.perf_counter() - started, 1),
    }
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()

"""Who spoke when: voice activity, voice embeddings, clustering, turns and roles.

``diarize`` gives anonymous turns ("S1", "S2", ... by first appearance); ``assign_roles`` names
them from the therapist's enrolled voice ("Therapist", "Client", "Client 2", ...);
``label_segments`` puts those names on the transcript's segments, splitting a segment where
the speaker changes between words. ``diarize_stereo`` handles telehealth recordings with one
speaker per channel by comparing the channels' loudness instead of voices.

Memory stays small for long sessions: voice activity runs on 2-minute chunks and windows are
embedded in batches, so nothing much larger than the decoded audio itself is ever held.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from relisten.lib.asr.types import Segment, Word

from .cluster import cluster_embeddings
from .encoder import SpeakerEncoder, window_starts
from .features import SAMPLE_RATE
from .types import Turn

__all__ = [
    "SpeechWindows",
    "assign_roles",
    "diarize",
    "diarize_stereo",
    "embed_speech",
    "label_segments",
    "speaker_embedding",
    "speech_regions",
    "voice_embedding",
]

WINDOW_S = 1.5
# 1.0 s rather than 0.75 s: a third fewer embeddings (diarization was ~24% of transcription
# time) at the same DER on AMI; turn boundaries are placed to within about a second.
HOP_S = 1.0
VAD_CHUNK_S = 120.0  # Silero's ONNX wrapper holds ~20 MB per minute of input: feed it 2 at a time
VAD_THRESHOLD = 0.2  # lower than ASR's 0.5: quiet and overlapped speech is most of the DER
MIN_SILENCE_MS = 250  # a pause this long ends a region (turn changes often hide in short gaps)
SPEECH_PAD_MS = 60
MIN_TURN_S = 0.3  # shorter pieces are absorbed by their neighbours
# A pause shorter than this inside one person's speech stays part of their turn: people pause
# mid-sentence, and a reader wants one turn, not five.
BRIDGE_GAP_S = 1.0
FRAMES_PER_S = 10  # loudness frames for stereo files (100 ms)
BLEED_DB = 8.0  # a channel this much quieter than the loudest is only hearing the other side
MAX_ROLE_SPEECH_S = 120.0  # a speaker's voice print uses at most this much of their speech
# A diarization window counts for a speaker's voice print when it lies within one of their
# turns, give or take this much (turn edges are placed between window centres).
WINDOW_EDGE_S = 0.25
# Below this similarity to the enrolled voice no speaker is taken for the therapist: a
# recording without them (a client's voice memo) must not name a client "Therapist".
THERAPIST_MIN_COSINE = 0.65


def _check_rate(sample_rate: int) -> None:
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"Diarization needs {SAMPLE_RATE} Hz audio (got {sample_rate} Hz).")


def speech_regions(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[tuple[float, float]]:
    """(start, end) seconds of speech, from the Silero VAD model that faster-whisper bundles."""
    _check_rate(sample_rate)
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # loads onnxruntime

    options = VadOptions(
        threshold=VAD_THRESHOLD,
        min_silence_duration_ms=MIN_SILENCE_MS,
        speech_pad_ms=SPEECH_PAD_MS,
        min_speech_duration_ms=100,
    )
    wav = np.asarray(audio, dtype=np.float32)
    chunk = int(VAD_CHUNK_S * sample_rate)
    regions: list[tuple[float, float]] = []
    for offset in range(0, len(wav), chunk):
        piece = wav[offset : offset + chunk]
        if piece.size < 512:  # less than one VAD frame
            continue
        for stamp in get_speech_timestamps(piece, options, sampling_rate=sample_rate):
            start = (offset + stamp["start"]) / sample_rate
            end = (offset + stamp["end"]) / sample_rate
            if regions and start - regions[-1][1] < 0.1:  # speech running over a chunk edge
                regions[-1] = (regions[-1][0], end)
            else:
                regions.append((start, end))
    return regions


def _label_name(index: int) -> str:
    return f"S{index + 1}"


def _smooth(labels: list[int]) -> list[int]:
    """Flip one-window islands whose two neighbours agree (a 0.75 s blip is rarely a turn)."""
    out = list(labels)
    for i in range(1, len(out) - 1):
        if out[i - 1] == out[i + 1] != out[i]:
            out[i] = out[i - 1]
    return out


def _turns_from_windows(
    regions: list[tuple[float, float]],
    per_region: list[np.ndarray],
    labels: np.ndarray,
    window_s: float,
) -> list[Turn]:
    """Each region is split at midpoints between windows of different speakers."""
    pieces: list[tuple[float, float, int]] = []
    cursor = 0
    for (begin, end), starts in zip(regions, per_region, strict=True):
        count = len(starts)
        region_labels = _smooth([int(v) for v in labels[cursor : cursor + count]])
        centres = starts + window_s / 2
        cursor += count
        piece_start = begin
        for i in range(1, count):
            if region_labels[i] != region_labels[i - 1]:
                cut = float(min(max((centres[i - 1] + centres[i]) / 2, piece_start), end))
                pieces.append((piece_start, cut, region_labels[i - 1]))
                piece_start = cut
        if count:
            pieces.append((piece_start, end, region_labels[-1]))
    return _tidy(pieces)


def _tidy(pieces: list[tuple[float, float, int]], keep_labels: bool = False) -> list[Turn]:
    """Absorb tiny pieces, bridge short same-speaker pauses, name speakers by first turn.

    ``keep_labels`` names speakers by their index ("0", "1") for a caller that renames them.
    """
    pieces = [p for p in pieces if p[1] > p[0]]
    changed = True
    while changed and len(pieces) > 1:
        changed = False
        for i, (start, end, who) in enumerate(pieces):
            if end - start >= MIN_TURN_S:
                continue
            touching_before = i > 0 and abs(pieces[i - 1][1] - start) < 0.05
            touching_after = i + 1 < len(pieces) and abs(pieces[i + 1][0] - end) < 0.05
            before = pieces[i - 1] if touching_before else None
            after = pieces[i + 1] if touching_after else None
            neighbour = before or after
            if neighbour is None or neighbour[2] == who:
                continue
            pieces[i] = (start, end, neighbour[2])
            changed = True
    merged: list[tuple[float, float, int]] = []
    for start, end, who in pieces:
        if merged and merged[-1][2] == who and start - merged[-1][1] <= BRIDGE_GAP_S:
            merged[-1] = (merged[-1][0], end, who)
        else:
            merged.append((start, end, who))
    order: dict[int, int] = {}
    turns = []
    for start, end, who in merged:
        index = order.setdefault(who, len(order))
        name = str(who) if keep_labels else _label_name(index)
        turns.append(Turn(round(start, 3), round(end, 3), name))
    return turns


@dataclass(frozen=True)
class SpeechWindows:
    """Diarization's costly first half: voice embeddings of the windows over the speech.

    It needs only the audio and the speech regions, not the words, so the worker computes it
    on another thread while faster-whisper transcribes (``embed_speech``), then clusters it.
    """

    regions: tuple[tuple[float, float], ...]
    starts: tuple[np.ndarray, ...]  # each region's window start times (s)
    embeddings: np.ndarray  # (windows, 256), the regions' windows in order


def embed_speech(
    audio: np.ndarray,
    regions: Sequence[tuple[float, float]],
    encoder: SpeakerEncoder,
    sample_rate: int = SAMPLE_RATE,
    stop: threading.Event | None = None,
) -> SpeechWindows:
    """Voice embeddings every ``HOP_S`` over the speech regions (``diarize`` clusters them).

    Pure numpy on read-only inputs, so it may run on another thread; ``stop`` cancels it
    between batches (``encoder.EmbeddingStopped``).
    """
    _check_rate(sample_rate)
    wav = np.asarray(audio, dtype=np.float32)
    duration = len(wav) / sample_rate
    spans = [(float(start), float(end)) for start, end in regions]
    per_region = tuple(window_starts([r], duration, WINDOW_S, HOP_S) for r in spans)
    _, embeddings = encoder.embed_windows(wav, spans, sample_rate, WINDOW_S, HOP_S, stop=stop)
    return SpeechWindows(tuple(spans), per_region, embeddings)


def diarize(
    audio: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    num_speakers: int | None = None,
    encoder: SpeakerEncoder | None = None,
    regions: list[tuple[float, float]] | None = None,
    windows: SpeechWindows | None = None,
) -> list[Turn]:
    """Speaker turns for mono audio; the number of speakers is estimated unless given.
    `regions`: speech already found by `speech_regions` (the pipeline's voice-activity step),
    so it is not computed twice. `windows`: their embeddings, already computed by
    `embed_speech` (then `regions` and `encoder` are not used)."""
    _check_rate(sample_rate)
    if windows is None:
        wav = np.asarray(audio, dtype=np.float32)
        if regions is None:
            regions = speech_regions(wav, sample_rate)
        if not regions:
            return []
        windows = embed_speech(wav, regions, encoder or SpeakerEncoder(), sample_rate)
    if not windows.regions:
        return []
    labels = cluster_embeddings(windows.embeddings, num_speakers)
    return _turns_from_windows(list(windows.regions), list(windows.starts), labels, WINDOW_S)


def diarize_stereo(channels: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[Turn]:
    """One speaker per channel (telehealth): each channel's own speech is that speaker's turns.

    Voice activity runs on every channel. Microphones pick up the other side too (bleed), so a
    100 ms frame only counts for a channel when that channel is within ``BLEED_DB`` of the
    loudest one; a much quieter copy of the other person is not speech of this one. People do
    talk at once, so turns of different speakers may overlap. Labels follow first appearance
    (the lower channel first on a tie).
    """
    _check_rate(sample_rate)
    if not channels:
        return []
    if len(channels) == 1:
        return diarize(channels[0], sample_rate)
    length = min(len(c) for c in channels)
    frame = sample_rate // FRAMES_PER_S
    n_frames = -(-length // frame)
    if n_frames == 0:
        return []
    levels = []
    for ch in channels:
        wav = np.asarray(ch[:length], dtype=np.float32)
        padded = np.pad(wav, (0, n_frames * frame - length))
        power = np.mean(np.square(padded.reshape(n_frames, frame), dtype=np.float64), axis=1)
        levels.append(10 * np.log10(_moving_mean(power, 5) + 1e-12))
    loudest = np.max(np.stack(levels), axis=0)
    pieces: list[tuple[float, float, int]] = []
    for index, ch in enumerate(channels):
        own = levels[index] >= loudest - BLEED_DB
        for start, end in speech_regions(np.asarray(ch[:length], dtype=np.float32), sample_rate):
            a = int(start * FRAMES_PER_S)
            b = min(int(np.ceil(end * FRAMES_PER_S)), n_frames)
            pieces.extend(
                (max(start, (a + i) / FRAMES_PER_S), min(end, (a + j) / FRAMES_PER_S), index)
                for i, j in _runs(own[a:b])
            )
    by_channel = [
        _tidy(sorted(p for p in pieces if p[2] == index), keep_labels=True)
        for index in range(len(channels))
    ]
    turns = sorted(
        (t for channel_turns in by_channel for t in channel_turns),
        key=lambda t: (t.start, t.speaker),
    )
    order: dict[str, str] = {}
    for turn in turns:
        order.setdefault(turn.speaker, _label_name(len(order)))
    return [Turn(t.start, t.end, order[t.speaker]) for t in turns]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of the True runs in a boolean array."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(edges[k]), int(edges[k + 1])) for k in range(0, len(edges), 2)]


def _moving_mean(values: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones(width) / width
    smoothed: np.ndarray = np.convolve(values, kernel, mode="same")
    return smoothed


def _longest_spans(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The longest stretches, up to MAX_ROLE_SPEECH_S in all, in time order."""
    chosen: list[tuple[float, float]] = []
    total = 0.0
    for start, end in sorted(spans, key=lambda s: s[0] - s[1]):
        if total >= MAX_ROLE_SPEECH_S:
            break
        chosen.append((start, end))
        total += end - start
    return sorted(chosen)


def _unit_mean(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    result: np.ndarray = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    return result


def speaker_embedding(
    audio: np.ndarray,
    spans: Sequence[tuple[float, float]],
    encoder: SpeakerEncoder,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray | None:
    """One voice print (256,) from the given stretches of speech (the longest, up to 2 min)."""
    chosen = _longest_spans(spans)
    if not chosen:
        return None
    _, windows = encoder.embed_windows(audio, chosen, sample_rate, WINDOW_S, HOP_S)
    if len(windows) == 0:
        return None
    return _unit_mean(windows)


def _print_from_windows(
    windows: SpeechWindows, spans: Sequence[tuple[float, float]]
) -> np.ndarray | None:
    """A speaker's voice print from diarization's own windows, without embedding again: the
    windows lying within the speaker's longest stretches (up to 2 min). None if there are none
    (only short turns), and the caller embeds those stretches instead."""
    if not windows.starts:
        return None
    starts = np.concatenate(windows.starts)
    inside = np.zeros(starts.size, dtype=bool)
    for begin, end in _longest_spans(spans):
        inside |= (starts >= begin - WINDOW_EDGE_S) & (starts + WINDOW_S <= end + WINDOW_EDGE_S)
    if not inside.any():
        return None
    return _unit_mean(windows.embeddings[inside])


def voice_embedding(
    audio: np.ndarray, encoder: SpeakerEncoder | None = None, sample_rate: int = SAMPLE_RATE
) -> np.ndarray | None:
    """A therapist's enrolment: the voice print of a ~30 s recording (its speech only).

    None when the recording holds no speech, so the caller can ask for another take.
    """
    _check_rate(sample_rate)
    wav = np.asarray(audio, dtype=np.float32)
    regions = speech_regions(wav, sample_rate)
    return speaker_embedding(wav, regions, encoder or SpeakerEncoder(), sample_rate)


def assign_roles(
    turns: list[Turn],
    audio: np.ndarray,
    therapist_voice: np.ndarray | None,
    encoder: SpeakerEncoder,
    sample_rate: int = SAMPLE_RATE,
    windows: SpeechWindows | None = None,
) -> dict[str, str]:
    """Names for the speaker labels.

    With the therapist's enrolled voice: the speaker whose voice is most similar (if similar
    enough at all) is "Therapist", the others "Client", "Client 2", ... in order of first
    appearance. Without one: "Speaker 1", "Speaker 2", ... in the same order. ``windows``:
    the embeddings ``diarize`` clustered, reused for the voice prints where they cover a
    speaker's turns (otherwise those turns are embedded here).
    """
    _check_rate(sample_rate)
    speakers: list[str] = []
    for turn in turns:
        if turn.speaker not in speakers:
            speakers.append(turn.speaker)
    if therapist_voice is None:
        return {label: f"Speaker {i + 1}" for i, label in enumerate(speakers)}
    voice = np.asarray(therapist_voice, dtype=np.float32).ravel()
    voice = voice / max(float(np.linalg.norm(voice)), 1e-12)
    wav = np.asarray(audio, dtype=np.float32)
    similarity: dict[str, float] = {}
    for label in speakers:
        spans = [(t.start, t.end) for t in turns if t.speaker == label]
        print_ = _print_from_windows(windows, spans) if windows is not None else None
        if print_ is None:
            print_ = speaker_embedding(wav, spans, encoder, sample_rate)
        similarity[label] = -1.0 if print_ is None else float(print_ @ voice)
    therapist = max(speakers, key=lambda s: similarity[s]) if speakers else None
    if therapist is not None and similarity[therapist] < THERAPIST_MIN_COSINE:
        therapist = None
    roles: dict[str, str] = {}
    clients = 0
    for label in speakers:
        if label == therapist:
            roles[label] = "Therapist"
        else:
            clients += 1
            roles[label] = "Client" if clients == 1 else f"Client {clients}"
    return roles


def _word_speaker(word: Word, turns: list[Turn]) -> str | None:
    """The turn overlapping the word most; failing that, the nearest turn within 1 s."""
    best: str | None = None
    best_overlap = 0.0
    nearest: str | None = None
    nearest_gap = 1.0
    for turn in turns:
        overlap = min(word.end, turn.end) - max(word.start, turn.start)
        if overlap > best_overlap:
            best, best_overlap = turn.speaker, overlap
        gap = max(turn.start - word.end, word.start - turn.end)
        if gap < nearest_gap:
            nearest, nearest_gap = turn.speaker, gap
    return best if best is not None else nearest


def _span_speaker(start: float, end: float, turns: list[Turn]) -> str | None:
    return _word_speaker(Word(start, end, "", 1.0), turns)


def label_segments(
    segments: Sequence[Segment], turns: list[Turn], roles: dict[str, str]
) -> tuple[Segment, ...]:
    """Speaker names on segments, splitting a segment where the speaker changes between words.

    Each word goes to the turn it overlaps most; a word outside every turn keeps the speaker of
    the word before it. ``roles`` maps labels to names; a label without a role is kept as is.
    """
    ordered = sorted(turns, key=lambda t: t.start)
    out: list[Segment] = []
    for segment in segments:
        if not segment.words:
            label = _span_speaker(segment.start, segment.end, ordered)
            name = roles.get(label, label) if label else None
            out.append(Segment(segment.start, segment.end, segment.text, (), name))
            continue
        labels: list[str | None] = []
        for word in segment.words:
            label = _word_speaker(word, ordered)
            labels.append(label if label is not None else (labels[-1] if labels else None))
        if labels[0] is None:  # leading words outside every turn take the first known speaker
            first = next((x for x in labels if x is not None), None)
            labels = [first if x is None else x for x in labels]
        runs: list[tuple[int, int]] = []
        for i, label in enumerate(labels):
            if runs and labels[runs[-1][0]] == label:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
        if len(runs) == 1:
            label = labels[0]
            name = roles.get(label, label) if label else None
            out.append(Segment(segment.start, segment.end, segment.text, segment.words, name))
            continue
        for r, (a, b) in enumerate(runs):
            words = segment.words[a:b]
            label = labels[a]
            start = segment.start if r == 0 else words[0].start
            end = segment.end if r == len(runs) - 1 else words[-1].end
            text = "".join(w.text for w in words)
            name = roles.get(label, label) if label else None
            out.append(Segment(start, end, text, tuple(words), name))
    return tuple(out)

"""``peerline transcribe FILE`` and ``peerline models``: local commands that need no app,
database or Redis (they never import Flask's app or :mod:`ivr`)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click
import vosk

from transcription.errors import AudioError, ModelUnavailableError
from transcription.modelpath import (
    LANGUAGE_NAMES,
    OFFICIAL_MODELS,
    choose_model,
    instance_path,
    is_demo_for,
    models_dir,
)
from transcription.pipeline import analyse
from transcription.vosk_engine import VoskTranscriber, looks_like_vosk_model


@click.command("transcribe")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the full result: words, timings, confidence, triage.")
@click.option("--language", type=click.Choice(sorted(OFFICIAL_MODELS)), default="en", show_default=True,
              help="The language spoken: picks VOSK_MODEL_PATH_<LANG>, else VOSK_MODEL_PATH, else a downloaded "
                   "model of that language, else the Korean demo model.")
@click.option("--model", "model_path", default=None, help="A Vosk model folder (overrides the choice by language).")
def transcribe_command(file: Path, as_json: bool, language: str, model_path: str | None) -> None:
    """Transcribe a WAV file offline with the worker's pipeline and print its text."""
    choice = choose_model({"VOSK_MODEL_PATH": model_path} if model_path else None, language=language)
    if choice.note:
        click.echo(choice.note, err=True)
    if choice.path and is_demo_for(choice.path, language):
        click.echo(f"not a real transcript: demo model (it does not speak {LANGUAGE_NAMES[language]})", err=True)
    transcriber = VoskTranscriber(choice.path, language=language)
    try:
        outcome = analyse(transcriber, file.read_bytes())
    except AudioError as exc:
        raise click.ClickException(f"{file}: {exc}") from exc
    except ModelUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), ensure_ascii=False, indent=2))
        return
    if outcome.transcript.no_speech:
        click.echo("(no speech)", err=True)
        return
    click.echo(outcome.transcript.text)
    if outcome.triage.level != "none":
        click.echo(f"risk: {outcome.triage.level} ({', '.join(outcome.triage.categories)})", err=True)


@click.command("models")
@click.option("--dir", "target", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to put the models (default: the instance folder's models/).")
@click.option("--language", "languages", type=click.Choice(sorted(OFFICIAL_MODELS)), multiple=True,
              help="Which language's model (repeatable; default: English and Spanish).")
def models_command(target: Path | None, languages: tuple[str, ...]) -> None:
    """Download Vosk's official small English and Spanish models (about 40 MB each; needs internet).

    It uses Vosk's own downloader (https://alphacephei.com/vosk/models/NAME.zip) and unpacks
    each model under the instance folder, where `peerline up` and `peerline transcribe` find
    it by its language. Without internet: fetch the zips elsewhere, unzip them anywhere and
    set VOSK_MODEL_PATH_EN / VOSK_MODEL_PATH_ES to the unzipped folders.
    """
    folder = target or models_dir(instance_path())
    failures = []
    for language in languages or tuple(sorted(OFFICIAL_MODELS)):
        name = OFFICIAL_MODELS[language]
        variable = f"VOSK_MODEL_PATH_{language.upper()}"
        destination = folder / name
        if looks_like_vosk_model(destination):
            click.echo(f"{name} is already in {folder}; nothing to do (or set {variable}={destination})")
            continue
        click.echo(f"downloading {vosk.MODEL_PRE_URL}{name}.zip into {folder} (Vosk's own downloader)")
        try:
            _VoskDownloader().download_model(destination)
        except OSError as exc:  # URLError is an OSError: no network, DNS, refused, HTTP errors
            shutil.rmtree(destination, ignore_errors=True)
            Path(str(destination) + ".zip").unlink(missing_ok=True)
            failures.append(
                f"could not download {name} ({LANGUAGE_NAMES[language]}): {exc}. This machine cannot reach "
                f"the internet ({vosk.MODEL_PRE_URL}). Download {vosk.MODEL_PRE_URL}{name}.zip on a machine that can, unzip it "
                f"into {folder} (or anywhere and set {variable} to the folder).")
            continue
        click.echo(f"installed {name}; `peerline up` uses it for {LANGUAGE_NAMES[language]} from now on "
                   f"(or set {variable}={destination})")
    if failures:
        raise click.ClickException("\n".join(failures))


class _VoskDownloader:
    """Runs vosk.Model's own download-and-unzip code without building a native model."""

    def download_model(self, destination: Path) -> None:
        """Download and unpack the named model into ``destination.parent``."""
        # download_model and its progress hook use nothing of the instance but each other,
        # so they run here unbound: Vosk's exact URL, zip handling and progress bar.
        shim = type("VoskDownloadShim", (), {
            "download_model": vosk.Model.download_model,
            "download_progress_hook": vosk.Model.download_progress_hook,
        })()
        shim.download_model(destination)
        if not looks_like_vosk_model(destination):
            print(f"warning: {destination} does not look like a Vosk model", file=sys.stderr)


COMMANDS: list[click.Command] = [transcribe_command, models_command]

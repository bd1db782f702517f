"""The page (Gradio ``Blocks``) and :func:`serve`.

Tabs: *Avatar studio* (the shipped avatar models, judged, each edit beside its ground
truth; an *Avatar video* sub-tab), *Photo* (the official photo models in the cache, or
the commands that fetch them; a face picker) and *Video* (a photo clip). The handlers
are thin: the work is in :mod:`~faceedit.app.backend` and :mod:`~faceedit.app.studio`.
Every error a user can cause is one line on the page, never a traceback, and names no
server path. Requests are queued (one model call at a time on the shared models).
"""

import atexit
import logging
import os
import signal
import tempfile
from pathlib import Path

from faceedit.app.access import AccessPolicy, scrub_paths
from faceedit.app.backend import (
    SAMPLE_PHOTO,
    SELFTEST,
    Backend,
    draw_box,
    enlarge,
    face_choices,
    parse_face,
    sample_photo,
)
from faceedit.app.photo import default_model, downloads_panel, official_photo_models
from faceedit.app.studio import STUDIO_MODELS, AvatarStudio
from faceedit.errors import FaceeditError

log = logging.getLogger("faceedit.app")

MAX_SLIDERS = 40  # CelebA has 40 attributes; unused sliders are hidden
STRENGTH = 2.0
PHOTO_METHODS = ("latent", "linear", "attgan")
#: Gradio refuses larger uploads with a bare "Error"; ours (smaller) names the limit
GRADIO_LIMIT_FACTOR = 4

HEADER = """# faceedit: edit facial attributes
Move a slider and release it: the edit appears beside the original (strength -2 removes,
+2 adds)."""

STUDIO_NOTE = """The shipped models edit avatars. *New avatar* draws one from its seed
(share the seed to share the result); its ground truth (the same avatar with the moved
attributes set) is shown beside the edit with the edit's *region gain* (1 = the truth,
0 = no better than doing nothing). The table is the evaluation judge's reading."""


def _fail(e: Exception) -> str:
    if isinstance(e, FaceeditError):
        return "Error: " + scrub_paths(str(e)).splitlines()[0]
    log.exception("unexpected error in the web page")
    return "Error: something went wrong on the server; the details are in its log."


def _session_id(request) -> str | None:
    return getattr(request, "session_hash", None)


def readings_table(
    before: dict[str, float], after: dict[str, float], moved: dict[str, float], names
) -> str:
    """The judge's readings as a Markdown table (moved attributes in bold)."""
    lines = ["| attribute | judge: before | after |", "|---|---:|---:|"]
    for a in names:
        if a not in before:
            continue
        label = f"**{a} ({moved[a]:+.1f})**" if a in moved else a
        lines.append(f"| {label} | {before[a]:.2f} | {after.get(a, before[a]):.2f} |")
    return "\n".join(lines)


def build_app(backend: Backend | None = None, method: str = "latent", model: str | None = None):
    """The Gradio ``Blocks`` app (not launched); ``method``/``model``: the photo tab's
    defaults."""
    import gradio as gr

    backend = backend or Backend()
    studio = AvatarStudio(backend)
    judge_attrs = list(studio.judge.config.attr_names)
    limit = f"{backend.max_upload_mb:g} MB"

    # ---------------------------------------------------------------- studio handlers
    def studio_sliders(method_: str) -> list:
        names = set(studio.attributes(method_))
        return [gr.update(visible=a in names, value=0) for a in judge_attrs]

    def show(avatar, method_, message):
        status = f"{message} · method {method_} ({STUDIO_MODELS[method_]})"
        table = readings_table(avatar.before, avatar.before, {}, judge_attrs)
        truth = enlarge(avatar.image) if avatar.record is not None else None
        return [avatar, status, enlarge(avatar.image), enlarge(avatar.image), truth, table, ""]

    def on_new(seed, method_):
        try:
            avatar = studio.new_avatar(int(seed if seed is not None else 0))
            sliders = studio_sliders(method_)
        except Exception as e:  # noqa: BLE001 - shown on the page, never as a traceback
            return [gr.update(), _fail(e)] + [gr.update()] * (5 + len(judge_attrs))
        return show(avatar, method_, f"avatar {avatar.seed}") + sliders

    def on_studio_upload(path, method_):
        try:
            avatar = studio.upload(path)
            sliders = studio_sliders(method_)
        except Exception as e:  # noqa: BLE001
            return [gr.update(), _fail(e)] + [gr.update()] * (5 + len(judge_attrs))
        return show(avatar, method_, f"{avatar.name} (uploaded: no ground truth)") + sliders

    def on_studio_method(avatar, method_):
        try:
            sliders = studio_sliders(method_)
        except Exception as e:  # noqa: BLE001
            return [gr.update(), _fail(e)] + [gr.update()] * (5 + len(judge_attrs))
        if avatar is None:
            blank = [None, f"method {method_}: draw a new avatar or upload one"]
            return blank + [gr.update()] * 5 + sliders
        return show(avatar, method_, avatar.name.removesuffix(".png")) + sliders

    def on_studio_edit(avatar, method_, *values):
        if avatar is None:
            return [gr.update()] * 3 + ["Error: draw a new avatar or upload one first", ""]
        moved = {a: float(v) for a, v in zip(judge_attrs, values, strict=True) if v}
        try:
            out = studio.edit(avatar, method_, moved)
        except Exception as e:  # noqa: BLE001
            return [gr.update()] * 3 + [_fail(e), ""]
        table = readings_table(avatar.before, out.after, moved, judge_attrs)
        edit = ", ".join(f"{k} {v:+.1f}" for k, v in moved.items()) or "none"
        truth_line = out.note
        if out.gain is not None:
            truth_line = f"region gain {out.gain:.2f}" + (f" ({out.note})" if out.note else "")
        truth = enlarge(out.truth) if out.truth is not None else None
        return [enlarge(out.image), truth, table, f"Edited: {edit} · {method_}", truth_line]

    def on_studio_reset(avatar, method_):
        if avatar is None:
            return [gr.update()] * 4 + ["reset"] + [gr.update(value=0)] * len(judge_attrs)
        table = readings_table(avatar.before, avatar.before, {}, judge_attrs)
        truth = enlarge(avatar.image) if avatar.record is not None else None
        return [enlarge(avatar.image), truth, table, "", "reset"] + [gr.update(value=0)] * len(
            judge_attrs
        )

    def on_studio_video(seed, method_, attribute, strength, request: gr.Request,
                        progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        try:
            seed = int(seed if seed is not None else 0)
            if not attribute:
                raise FaceeditError("choose the attribute to edit")
            progress(0, desc="drawing the clip")
            folder = Path(tempfile.mkdtemp(dir=backend.session_dir(_session_id(request))))
            clip = studio.clip(seed, folder / f"avatar-{seed}.mp4")
            report = backend.edit_video(
                str(clip), method_, STUDIO_MODELS[method_], {attribute: strength},
                _session_id(request),
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001
            return None, _fail(e)
        return str(report.output), (
            f"Done: {attribute} {float(strength):+.1f} on avatar {seed}'s clip with {method_} "
            f"({STUDIO_MODELS[method_]}): {report.frames} frames, {report.edited} edited"
        )

    # ----------------------------------------------------------------- photo handlers
    def photo_model(model_text, selftest):
        return SELFTEST if selftest else (model_text or "").strip()

    def photo_sliders(attributes: list[str]) -> list:
        return [
            gr.update(visible=i < len(attributes), label=attributes[i], value=0)
            if i < len(attributes)
            else gr.update(visible=False, value=0)
            for i in range(MAX_SLIDERS)
        ]

    n_prepared = 8  # outputs of on_photo before the sliders

    def keep(message: str) -> list:
        """Leave the page as it is (the photo stays) and show ``message``."""
        return [gr.update(), message] + [gr.update()] * (n_prepared - 2 + MAX_SLIDERS)

    def on_photo(path, method_, model_text, selftest, request: gr.Request):
        backend.track(_session_id(request), path)
        try:
            session = backend.prepare(path, method_, photo_model(model_text, selftest))
        except Exception as e:  # noqa: BLE001
            return keep(_fail(e))
        return prepared(session)

    def prepared(session) -> list:
        faces = [f for f in session.faces if f is not None]
        if not faces:  # an avatar model: the whole image is the face
            found, boxed = "the whole avatar image is edited", session.original
        else:
            found = (
                f"face found (score {faces[0].score:.2f})"
                if len(faces) == 1
                else f"{len(faces)} faces found: pick one, or all, below"
            )
            boxed = session.original
            for face in faces:
                boxed = draw_box(boxed, face.box, face.quad)
        status = f"{session.name}: {found}; {len(session.attributes)} attributes to edit."
        if session.notes:
            status += " Warning: " + " ".join(session.notes)
        choices = face_choices(len(faces))
        return [
            session,
            status,
            session.original,
            session.original,
            boxed,
            enlarge(session.crop),
            None,
            gr.update(choices=choices, value=choices[0], visible=len(faces) > 1),
        ] + photo_sliders(session.attributes)

    def on_sample(method_, model_text, selftest):
        try:
            session = backend.prepare(
                str(sample_photo()), method_, photo_model(model_text, selftest)
            )
        except Exception as e:  # noqa: BLE001
            return keep(_fail(e))
        return prepared(session)

    def on_model(current, method_, model_text, selftest):
        # a new method or model: prepare the same photo again (its sliders change); a
        # model that does not load leaves the photo and the session as they were
        if current is None:
            try:
                backend.editor(method_, photo_model(model_text, selftest))
            except Exception as e:  # noqa: BLE001
                return keep(_fail(e))
            return keep("Model ready: choose a photo.")
        try:
            session = backend.prepare(
                None, method_, photo_model(model_text, selftest),
                rgb=current.original, name=current.name,
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001
            return keep(f"{_fail(e)} (still editing {current.name} with {current.model})")
        return prepared(session)

    def on_edit(request: gr.Request, session, face, *values):
        if session is None:
            return None, "Error: choose a photo first (upload one or use the sample)", None
        strengths = dict(zip(session.attributes, values, strict=False))
        try:
            out = backend.edit(session, strengths, parse_face(face, len(session.faces)))
            path = backend.save(out, session.name, _session_id(request))
        except Exception as e:  # noqa: BLE001
            return gr.update(), _fail(e), gr.update()
        changed = ", ".join(f"{k} {v:+.1f}" for k, v in strengths.items() if v) or "none"
        return out, f"Edited: {changed}", path

    def on_reset(session):
        original = None if session is None else session.original
        return [original, "reset", None] + [gr.update(value=0)] * MAX_SLIDERS

    def on_video(path, method_, model_text, selftest, attribute, strength, request: gr.Request,
                 progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        backend.track(_session_id(request), path)
        try:
            if not attribute:
                raise FaceeditError("choose the attribute to edit")
            progress(0, desc="analysing the clip")
            report = backend.edit_video(
                path, method_, photo_model(model_text, selftest), {attribute: strength},
                _session_id(request),
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001
            return None, None, _fail(e)
        return (
            str(report.output),
            str(report.output),
            (
                f"Done: {attribute} {float(strength):+.1f} on {report.frames} frames, "
                f"{report.edited} edited"
            ),
        )

    def on_attributes(method_, model_text, selftest):
        try:
            names = backend.editor(method_, photo_model(model_text, selftest)).attributes
        except Exception as e:  # noqa: BLE001
            return gr.update(choices=[], value=None), _fail(e)
        return gr.update(choices=names, value=names[0] if names else None), ""

    def on_load(method_):
        models = official_photo_models()
        names = ", ".join(f"`{n}` ({'/'.join(m)})" for n, m in models.items())
        offered = f"Official photo models here: {names}." if models else ""
        return (
            gr.update(value=downloads_panel(), visible=not models),
            gr.update(value=offered, visible=bool(models)),
            gr.update(value=model or default_model(method_, models)),
        )

    def on_unload(request: gr.Request):
        backend.end_session(_session_id(request))

    # ------------------------------------------------------------------------ layout
    with gr.Blocks(title="faceedit", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(HEADER)
        with gr.Tab("Avatar studio", elem_id="studio-tab"):
            gr.Markdown(STUDIO_NOTE)
            avatar = gr.State(None)
            with gr.Row():
                with gr.Column():
                    seed = gr.Number(value=1, precision=0, minimum=0, label="Seed",
                                     elem_id="studio-seed")  # fmt: skip
                    new = gr.Button("New avatar", variant="primary", elem_id="studio-new")
                with gr.Column():
                    s_method = gr.Radio(list(STUDIO_MODELS), value="attgan", label="Method",
                                        elem_id="studio-method")  # fmt: skip
                    s_upload = gr.File(label=f"Or upload an avatar PNG (up to {limit})",
                                       file_types=["image"], type="filepath",
                                       elem_id="studio-upload")  # fmt: skip
            s_status = gr.Markdown("Press *New avatar* to start.", elem_id="studio-status")
            with gr.Tab("Avatar image"):
                with gr.Row():
                    s_original = gr.Image(label="Original", format="png", interactive=False,
                                          elem_id="studio-original")  # fmt: skip
                    s_result = gr.Image(label="Edited", format="png", interactive=False,
                                        elem_id="studio-result")  # fmt: skip
                    s_truth = gr.Image(label="Ground truth", format="png", interactive=False,
                                       elem_id="studio-truth")  # fmt: skip
                s_truth_status = gr.Markdown("", elem_id="studio-truth-status")
                with gr.Row():
                    s_sliders = [
                        gr.Slider(
                            -STRENGTH,
                            STRENGTH,
                            value=0,
                            step=0.1,
                            label=a,
                            elem_id=f"studio-{a}",
                            min_width=200,
                        )  # fmt: skip
                        for a in judge_attrs
                    ]
                with gr.Row():
                    s_reset = gr.Button("Reset", elem_id="studio-reset")
                s_readings = gr.Markdown("", elem_id="studio-readings")
            with gr.Tab("Avatar video"):
                gr.Markdown("Edits a short clip of the avatar of the seed above (a slow zoom "
                            "and pan), frame by frame, with the method above.")  # fmt: skip
                with gr.Row():
                    sv_attr = gr.Dropdown(judge_attrs, value="Smiling", label="Attribute",
                                          elem_id="studio-video-attr")  # fmt: skip
                    sv_strength = gr.Slider(-STRENGTH, STRENGTH, value=1.0, step=0.1,
                                            label="Strength", elem_id="studio-video-strength")  # fmt: skip
                    sv_run = gr.Button("Make the clip and edit it", elem_id="studio-video-run")
                sv_status = gr.Markdown("", elem_id="studio-video-status")
                sv_out = gr.Video(label="Edited clip", elem_id="studio-video-result")

        with gr.Tab("Photo", elem_id="photo-tab"):
            panel = gr.Markdown(downloads_panel(), elem_id="photo-downloads")
            offered = gr.Markdown("", visible=False, elem_id="photo-offered")
            session = gr.State(None)
            with gr.Row():
                upload = gr.File(label=f"Photo (JPEG, PNG, ...; up to {limit})",
                                 file_types=["image"], type="filepath",
                                 elem_id="upload")  # fmt: skip
                with gr.Column():
                    sample = gr.Button(f"Use the sample photo ({SAMPLE_PHOTO})", elem_id="sample")
                    p_method = gr.Radio(list(PHOTO_METHODS), value=method, label="Method",
                                        elem_id="method")  # fmt: skip
                    hint = ("a downloaded model's name" if not backend.policy.allow_paths
                            else "a downloaded model's name, or a bundle / checkpoint path")  # fmt: skip
                    p_model = gr.Textbox(value=model or "", label=f"Model: {hint}",
                                         elem_id="model")  # fmt: skip
                    selftest = gr.Checkbox(
                        False,
                        label="Use the self-test model instead: random weights, the face "
                        "becomes noise (it only checks that the page works)",
                        elem_id="selftest",
                    )
            status = gr.Markdown("Choose a photo to start.", elem_id="status")
            face = gr.Dropdown(["face 1"], value="face 1", label="Face to edit", visible=False,
                               elem_id="face")  # fmt: skip
            with gr.Row():
                original = gr.Image(label="Original", format="png", interactive=False,
                                    elem_id="original")  # fmt: skip
                result = gr.Image(label="Edited", format="png", interactive=False, elem_id="result")
            with gr.Row():
                sliders = [
                    gr.Slider(
                        -STRENGTH,
                        STRENGTH,
                        value=0,
                        step=0.1,
                        label=f"attribute {i}",
                        visible=False,
                        elem_id=f"slider-{i}",
                        min_width=200,
                    )  # fmt: skip
                    for i in range(MAX_SLIDERS)
                ]
            with gr.Row():
                reset = gr.Button("Reset", elem_id="reset")
                download = gr.File(label="Download the result (PNG)", elem_id="download")
            with gr.Row():
                boxed = gr.Image(label="Detected faces (box, crop)", format="png",
                                 interactive=False)  # fmt: skip
                crop = gr.Image(label="Aligned crop (face 1)", format="png", interactive=False)
        with gr.Tab("Video", elem_id="video-tab"):
            gr.Markdown(
                "Edit a short photo clip (a few seconds) with the method and model of the "
                "Photo tab: the face is tracked and smoothed over time, the audio kept."
            )
            with gr.Row():
                video_in = gr.File(label=f"Video (MP4, MKV, MOV, ...; up to {limit})",
                                   type="filepath", file_types=["video"],
                                   elem_id="video-upload")  # fmt: skip
                with gr.Column():
                    attribute = gr.Dropdown(label="Attribute", choices=[], elem_id="video-attr")
                    strength = gr.Slider(-STRENGTH, STRENGTH, value=1.0, step=0.1,
                                         label="Strength", elem_id="video-strength")  # fmt: skip
                    run_video = gr.Button("Edit the video", elem_id="video-run")
            video_status = gr.Markdown("", elem_id="video-status")
            with gr.Row():
                video_out = gr.Video(label="Edited video", elem_id="video-result")
                video_file = gr.File(label="Download the edited video", elem_id="video-download")

        # studio events
        shown = [avatar, s_status, s_original, s_result, s_truth, s_readings, s_truth_status]
        new.click(on_new, [seed, s_method], shown + s_sliders)
        s_upload.upload(on_studio_upload, [s_upload, s_method], shown + s_sliders)
        s_method.change(on_studio_method, [avatar, s_method], shown + s_sliders)
        edited = [s_result, s_truth, s_readings, s_status, s_truth_status]
        for slider in s_sliders:
            slider.release(on_studio_edit, [avatar, s_method, *s_sliders], edited)
        s_reset.click(on_studio_reset, [avatar, s_method],
                      [s_result, s_truth, s_readings, s_truth_status, s_status, *s_sliders])  # fmt: skip
        sv_run.click(on_studio_video, [seed, s_method, sv_attr, sv_strength],
                     [sv_out, sv_status])  # fmt: skip

        # photo events
        outs = [session, status, original, result, boxed, crop, download, face, *sliders]
        chosen = [p_method, p_model, selftest]
        upload.upload(on_photo, [upload, *chosen], outs)
        sample.click(on_sample, chosen, outs)
        for trigger in (p_method.change, p_model.submit, selftest.change):
            trigger(on_model, [session, *chosen], outs)
            trigger(on_attributes, chosen, [attribute, video_status])
        for slider in sliders:
            slider.release(on_edit, [session, face, *sliders], [result, status, download])
        face.change(on_edit, [session, face, *sliders], [result, status, download])
        reset.click(on_reset, [session], [result, status, download, *sliders])
        run_video.click(on_video, [video_in, *chosen, attribute, strength],
                        [video_out, video_file, video_status])  # fmt: skip
        app.load(on_load, [p_method], [panel, offered, p_model])
        app.unload(on_unload)
    # one model call at a time on the shared models; other requests wait in the queue
    app.queue(default_concurrency_limit=1, max_size=64)
    return app


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``USER:PASSWORD`` -> ``(user, password)``; ``None`` for no text.

    Raises:
        FaceeditError: not of that form (the text itself is not repeated).
    """
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise FaceeditError("--auth takes USER:PASSWORD (both non-empty)")
    return user, password


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = 10.0,
    steps: int = 40,
    model: str | None = None,
    method: str = "latent",
    device: str = "cpu",
    allow_paths: bool = False,
    auth: tuple[str, str] | None = None,
    policy: AccessPolicy | None = None,
    block: bool = True,
    invert: str = "auto",
    inversion: dict | None = None,
):
    """Build and run the page; models run on ``device``.

    Off loopback the model box takes only shipped and downloaded names unless
    ``allow_paths`` (``policy`` overrides the host's). Everything the server writes goes
    into one temporary directory (uploads too: ``GRADIO_TEMP_DIR`` points there), removed
    when it stops. ``invert``/``inversion``: how latent models invert (``"pti"``: pivotal
    tuning, with :class:`~faceedit.editing.latent_pipeline.Inversion` options such as
    ``pti_steps``). With ``block=False`` returns ``(app, backend)`` running in the
    background (the caller closes both); otherwise blocks until interrupted.
    """
    policy = policy or AccessPolicy.for_host(host, allow_paths)
    workdir = Path(tempfile.mkdtemp(prefix="faceedit-serve-"))
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "uploads")
    backend = Backend(
        steps=steps,
        max_upload_mb=max_upload_mb,
        device=device,
        workdir=workdir,
        policy=policy,
        invert=invert,
        inversion=inversion,
    )
    atexit.register(backend.close)
    try:
        if model:
            backend.editor(method, model)  # fail early, with a clear message
        app = build_app(backend, method=method, model=model)
        if block and hasattr(signal, "SIGTERM"):
            # a terminated server cleans up as an interrupted one does
            signal.signal(signal.SIGTERM, _interrupt)
        app.launch(
            server_name=host,
            server_port=port,
            max_file_size=f"{max_upload_mb * GRADIO_LIMIT_FACTOR:g}mb",
            show_api=False,
            share=False,
            inbrowser=False,
            quiet=True,
            auth=[auth] if auth else None,
            auth_message="faceedit: sign in with the user and password the server was given",
            allowed_paths=[str(workdir)],
            prevent_thread_lock=not block,
        )
    except BaseException:
        backend.close()
        raise
    if not block:
        return app, backend
    backend.close()
    return None


__all__ = ["build_app", "parse_auth", "readings_table", "serve"]

"""What the GPU strip says (issue 16 item 1), read as text at both sizes, from the recorded H200 reading."""

from __future__ import annotations

from charter_tui.app import CharterApp
from tests.tui.helpers import screen_text, settle
from tests.tui.test_snapshots import _gpu_app


async def test_the_strip_reads_like_nvitops_header_and_names_the_target_holding_memory(make_app) -> None:
    for width, height in ((160, 48), (80, 24)):
        app: CharterApp = _gpu_app(make_app)
        async with app.run_test(size=(width, height)) as pilot:
            await settle(app, pilot)
            line = screen_text(app).splitlines()[1]
            assert line.startswith(" GPU0 NVIDIA H200"), line
            assert "util 100%" in line and "mem  21.6/140.4 GiB" in line and "54°C" in line
            if width == 160:
                assert "693/700 W power cap" in line and "SM 1485 MHz" in line
                assert "vllm-a 21.0 GiB" in line  # the process, matched to its target
            # The table follows the strip.
            assert screen_text(app).splitlines()[2].lstrip().startswith("target")


async def test_without_a_driver_one_line_and_nothing_else_changes(make_app) -> None:
    app: CharterApp = _gpu_app(make_app, available=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        lines = screen_text(app).splitlines()
        # Whole at 80 columns (a new user saw "NVML Shared Library Not Fou…").
        assert lines[1].strip() == "GPU: none — NVML could not start (NVML Shared Library Not Found)"
        assert lines[2].lstrip().startswith("target")
    plain: CharterApp = make_app()  # before the daemon says anything of GPUs: no strip at all
    async with plain.run_test(size=(80, 24)) as pilot:
        await settle(plain, pilot)
        assert screen_text(plain).splitlines()[1].lstrip().startswith("target")


async def test_the_detail_of_the_target_holding_gpu_memory_shows_that_gpu(make_app) -> None:
    from tests.tui.helpers import static_text

    app: CharterApp = _gpu_app(make_app)  # the H200's one process is vllm-a's
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        app.show_instance_detail("vllm-a")
        await settle(app, pilot)
        header = static_text(app, "#detail-header")
        assert "GPU0 NVIDIA H200" in header and "(vllm-a holds 21.0 GiB)" in header
        app.show_instance_detail("triton-b")  # holds no GPU memory here: no GPU rows
        await settle(app, pilot)
        assert "GPU0" not in static_text(app, "#detail-header")

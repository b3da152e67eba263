"""App latency, measured by driving the real page in headless Chromium (issues 5 and 11's targets):

- Explore, MNIST smallgap (normal), PGD-40, four explainers (CAM, Grad-CAM++, saliency, IG) on clean
  and adversarial images: median click-to-rendered time, target <= 1 s on the 2-core machine;
- the same with CIFAR-10 wresnet: target <= 2.5 s;
- two sessions attacking at once: no errors, and each sees only its own image.

Every timed click asks for a new image (the Random button), so no result comes from the cache (the
clean maps included). Beside the wall times, the library's compute time (the page's "computed in")
and the server process's CPU seconds per click (read from /proc: what the click costs the machine,
which a shared machine's load does not stretch). ``python -m benchmarks.bench_app [--repeats N]``.
The driver (server, browser, page helpers) is tools/app_driver.py, shared with tests/test_browser.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from tools.app_driver import (
    app_server,
    choose_model,
    compute_seconds,
    current_image,
    errors,
    launch_browser,
    open_explore,
    run_attack,
    wait_idle,
)

EXPLAINERS = ("CAM", "Grad-CAM++", "Saliency", "Integrated Gradients")
#: Explore's click-to-rendered targets in seconds: (dataset, model, target).
TARGETS = (("MNIST", "mnist-smallgap-normal-paper", 1.0), ("CIFAR-10", "cifar10-wresnet-normal-paper", 2.5))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds process ``pid`` has used (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def explore_latency(page, url: str, server_pid: int, dataset: str, model: str,
                    repeats: int) -> tuple[list[float], list[float], list[float]]:
    """Click-to-rendered seconds, the library's compute seconds and the server's CPU seconds of
    ``repeats`` fresh attacks."""
    open_explore(page, url, dataset)
    choose_model(page, model)
    times, compute, cpu, attacked = [], [], [], set()
    for _ in range(repeats + 1):  # the first click also loads the model: not counted
        # an image not attacked yet, so no cache hit; by its number ("#12"), as its label gains the
        # prediction once the gallery is classified
        while (number := current_image(page).split(" · ")[0]) in attacked:
            page.get_by_role("button", name="Random image").click()
            wait_idle(page)
        attacked.add(number)
        start = cpu_seconds(server_pid)
        times.append(run_attack(page, dataset))
        cpu.append(cpu_seconds(server_pid) - start)
        compute.append(compute_seconds(page))
        if errors(page):
            raise RuntimeError(f"the page shows errors: {errors(page)}")
    return times[1:], compute[1:], cpu[1:]


def two_sessions(browser, url: str) -> dict:
    """Two sessions click Run at the same time on different images; each must see its own."""
    pages = [browser.new_context(viewport={"width": 1400, "height": 1000}).new_page() for _ in range(2)]
    for page in pages:
        open_explore(page, url)
    pages[1].get_by_role("button", name="Random image").click()
    wait_idle(pages[1])
    images = ["MNIST " + current_image(p).split(" · ")[0] for p in pages]
    start = time.perf_counter()
    for page in pages:
        page.get_by_role("button", name="Run attack").click()
    seen = []
    for page, image in zip(pages, images):
        page.wait_for_function(
            "(image) => [...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
            ".some(c => c.innerText.startsWith('Results for: ' + image + ' '))", arg=image, timeout=120_000)
        wait_idle(page, started=True)
        seen.append([c.inner_text() for c in page.locator("[data-testid='stCaptionContainer']").all()
                     if c.inner_text().startswith("Results for:")])
    own = all(len(s) == 1 and s[0].startswith(f"Results for: {im} ") for s, im in zip(seen, images))
    return {"images": images, "both_seconds": time.perf_counter() - start, "own_state_only": own,
            "errors": [e for p in pages for e in errors(p)]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    from playwright.sync_api import sync_playwright

    from benchmarks.results import record

    rows, server = [], []
    with app_server(started=server) as url, sync_playwright() as pw:
        browser = launch_browser(pw)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        for dataset, model, target in TARGETS:
            times, compute, cpu = explore_latency(page, url, server[0].pid, dataset, model, repeats)
            median = statistics.median(times)
            rows.append({"model": model, "click-to-rendered median s": median, "target s": target,
                         "library compute median s": statistics.median(compute),
                         "server CPU median s": statistics.median(cpu), "n": len(times)})
            print(f"explore {dataset:<8} {model:<30} PGD-40, {len(EXPLAINERS)} explainers: click-to-rendered median "
                  f"{median:.2f} s (min {min(times):.2f}, max {max(times):.2f}, n={len(times)}; library compute "
                  f"median {statistics.median(compute):.2f} s; server CPU median {statistics.median(cpu):.2f} s); "
                  f"target <= {target:g} s: {'met' if median <= target else 'MISSED'}")
        both = two_sessions(browser, url)
        print(f"two sessions at once: images {both['images']}, both done in {both['both_seconds']:.2f} s, "
              f"own state only: {both['own_state_only']}, errors: {both['errors'] or 'none'}")
        browser.close()
    record("app", {"title": "App latency (Explore, PGD-40, four explainers)", "settings": {"repeats": repeats},
                   "tables": {"Explore click-to-rendered": rows},
                   "notes": [f"two sessions at once: both done in {both['both_seconds']:.2f} s, own state only: "
                             f"{both['own_state_only']}, errors: {both['errors'] or 'none'}"]}, args.quick)


if __name__ == "__main__":
    main()

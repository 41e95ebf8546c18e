"""Drives the moldops operator console in headless Chromium (Debian's, through Playwright) the
way an operator would, and reports what it saw as JSON on stdout for the Rust test to judge.

Visits every page, recording the HTTP status, the browser's console errors and uncaught page
errors, and a full-page screenshot; tries to acknowledge an alarm before signing in (must be
refused), signs in with the token, acknowledges the newest alarm with a comment, then archives
the production version of the first model key, rolls back to it, starts its rollout to every
edge and starts a pipeline run, all through the forms.

usage: console_browser.py URL TOKEN SCREENSHOT_DIR
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("MOLDOPS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main():
    url, token, shots = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    os.makedirs(shots, exist_ok=True)
    report = {"pages": {}, "errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def visit(name, path):
            errors.clear()
            response = page.goto(url + path)
            page.screenshot(path=os.path.join(shots, f"{name}.png"), full_page=True)
            report["pages"][name] = {
                "status": response.status if response else None,
                "errors": list(errors),
                "title": page.title(),
                "text": page.inner_text("main"),
            }
            return page

        visit("fleet", "/")
        report["devices"] = page.locator("tr.device").count()
        machines = page.eval_on_selector_all("tr.machine a", "els => els.map(e => e.textContent)")
        report["machines"] = machines
        if machines:
            page.click("tr.machine a")
            page.wait_for_load_state()
            visit("machine", page.url[len(url):])
            report["trend_svg"] = page.locator("#trend svg").count()
            report["peripherals"] = page.locator("tr.peripheral").count()
        visit("alarms", "/alarms")
        alarms = page.locator("tr.alarm")
        report["alarms_listed"] = alarms.count()
        visit("models", "/models")
        report["versions"] = page.eval_on_selector_all(
            "tr.version", "els => els.map(e => [e.closest('section').dataset.key, +e.dataset.version, e.dataset.stage])")
        if page.locator("a.version-link").count():
            page.click("a.version-link")
            page.wait_for_load_state()
            visit("version", page.url[len(url):])
            report["version_plots"] = page.locator("#training svg, #live svg").count()
        for name, path in [("rollouts", "/rollouts"), ("pipeline", "/pipeline"), ("reports", "/reports")]:
            visit(name, path)

        if report["alarms_listed"]:
            visit("alarms", "/alarms")
            page.click("tr.alarm a")
            page.wait_for_load_state()
            alarm_path = page.url[len(url):]
            report["alarm_path"] = alarm_path
            visit("alarm", alarm_path)
            report["contribution_bars"] = page.locator("tr.contribution").count()
            gate = page.locator("#gate")
            report["gate"] = gate.inner_text() if gate.count() else None
            # Not signed in: the form is there, the server refuses it.
            page.fill("#comment", "not signed in")
            with page.expect_response(lambda r: r.url.endswith("/acknowledge")) as refused:
                page.click("#acknowledge")
            report["ack_unsigned_status"] = refused.value.status
            # The refusal page loads (and logs its 401) before the next page is judged.
            page.wait_for_load_state("load")
            report["ack_unsigned_page"] = page.inner_text("body")

        # Sign in through the form.
        visit("login", "/login")
        page.fill("#token", token)
        page.click("#sign-in")
        page.wait_for_load_state()
        report["signed_in_as"] = page.inner_text("#who")

        if report["alarms_listed"]:
            page.goto(url + report["alarm_path"])
            page.fill("#comment", "checked by the browser test: short shot, part scrapped")
            page.click("#acknowledge")
            page.wait_for_load_state()
            visit("alarm_acknowledged", page.url[len(url):])
            report["acks_shown"] = page.locator("tr.ack").count()

        production = [v for v in report["versions"] if v[2] == "production"]
        if production:
            key, version, _ = production[0]
            visit("models_signed_in", "/models")
            section = page.locator(f"section.key[data-key='{key}']")
            section.locator(f"tr.version[data-version='{version}'] a.archive").click()
            page.wait_for_load_state()
            visit("confirm_archive", page.url[len(url):])
            page.fill("#comment", "browser test: archive")
            page.click("#confirm")
            page.wait_for_load_state()
            report["after_archive"] = page.eval_on_selector(
                f"section.key[data-key='{key}'] tr.version[data-version='{version}']", "e => e.dataset.stage")
            section = page.locator(f"section.key[data-key='{key}']")
            section.locator(f"tr.version[data-version='{version}'] a.promote").click()
            page.wait_for_load_state()
            page.fill("#comment", "browser test: roll back")
            page.click("#confirm")
            page.wait_for_load_state()
            report["after_rollback"] = page.eval_on_selector(
                f"section.key[data-key='{key}'] tr.version[data-version='{version}']", "e => e.dataset.stage")
            report["changed_key"] = [key, version]
            visit("models_after", "/models")
            # Roll the production version out to every edge the lake knows, canary first.
            page.locator(f"section.key[data-key='{key}'] tr.version[data-version='{version}'] a.rollout").click()
            page.wait_for_load_state()
            visit("rollout", page.url[len(url):])
            report["rollout_edges"] = page.locator("input.edge-choice").count()
            if report["rollout_edges"]:
                page.fill("#comment", "browser test: roll out")
                page.click("#start-rollout")
                page.wait_for_load_state()
                report["after_rollout_path"] = page.url[len(url):]
        # Start a pipeline run from the pipeline page (a console started with --pipeline-start).
        visit("pipeline_signed_in", "/pipeline")
        if page.locator("#start-run").count():
            page.fill("#run-comment", "browser test: a run")
            page.click("#start-run")
            page.wait_for_load_state()
            report["after_run_start_path"] = page.url[len(url):]
        browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()

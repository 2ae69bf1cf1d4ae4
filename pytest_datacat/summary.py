"""What the plugin says at the end: one terminal line, and a GitHub step summary."""

from __future__ import annotations

import dataclasses
import heapq
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from datacat_client import default_spool_dir
from datacat_client.wire import VERDICTS

if TYPE_CHECKING:
    from pytest_datacat.recorder import Recorder

__all__ = ["Highlights", "RunSummary"]

_ORDER = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
#: Headings of the step summary's failure lists, most actionable first.
_SECTIONS = (
    ("new", "New failures"),
    ("new_test", "New tests failing"),
    ("already_failing", "Already failing"),
    ("known_flaky", "Known flaky"),
)


@dataclasses.dataclass
class Highlights:
    """The few results worth naming in a summary, kept in bounded memory."""

    slowest_kept: int = 5
    failures_kept: int = 20
    slowest: list[tuple[float, str]] = dataclasses.field(default_factory=list)
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    failure_count: int = 0

    def add(
        self,
        nodeid: str,
        subtest: str | None,
        outcome: str,
        duration: float,
        message: str | None,
        *,
        exc_type: str | None = None,
    ) -> None:
        """Consider one result (called for every result: keep the common case cheap)."""
        slowest = self.slowest
        if len(slowest) < self.slowest_kept:
            heapq.heappush(slowest, (duration, _name(nodeid, subtest)))
        elif duration > slowest[0][0]:
            heapq.heapreplace(slowest, (duration, _name(nodeid, subtest)))
        if outcome == "failed" or outcome == "error":  # noqa: PLR1714 - hot path
            self.failure_count += 1
            if len(self.failures) < self.failures_kept:
                line = (message or outcome).split("\n", 1)[0][:200]
                if exc_type:
                    line = f"{exc_type}: {line}"
                self.failures.append((_name(nodeid, subtest), line))


def _name(nodeid: str, subtest: str | None) -> str:
    return f"{nodeid} [{subtest}]" if subtest else nodeid


@dataclasses.dataclass
class RunSummary:
    """What became of a recorded run: the plugin's line, and the GitHub step summary."""

    session_id: str
    run_url: str
    status: str
    counts: dict[str, int]
    results: int
    duration: float
    delivered: bool
    sent: int
    spooled: int
    lost: int
    spool_dir: Path
    #: Why the server refused records, if it did (a missing or wrong token, mostly).
    refusal: str | None
    #: Why posts last failed without an answer (``server unreachable``), if they did.
    failure: str | None
    #: Records that earlier runs had spooled, sent by this one.
    leftovers_sent: int
    #: The server, and whether a token was used: what `datacat upload` needs too.
    url: str
    with_token: bool
    overhead: float
    errors: list[str]
    highlights: Highlights
    #: The server's classification of the failures (`GET .../classification`), or None
    #: with why it is missing.
    classification: dict[str, Any] | None = None
    classification_error: str | None = None
    #: ``--datacat-quarantine``: asked for, why it was not applied, and the quarantined
    #: tests that failed (their failures left the exit status alone).
    quarantine: bool = False
    quarantine_error: str | None = None
    quarantined_failures: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def build(
        cls,
        *,
        recorder: Recorder,
        status: str,
        counts: dict[str, int],
        duration: float,
        delivered: bool,
        overhead: float,
    ) -> RunSummary:
        datacat = recorder.datacat
        stats = datacat.stats if datacat is not None else None
        session_id = datacat.session_id if datacat is not None else ""
        return cls(
            session_id=session_id,
            run_url=f"{recorder.options.url}/runs/{session_id}",
            status=status,
            counts=counts,
            results=recorder.results,
            duration=duration,
            delivered=delivered,
            sent=stats.sent + stats.duplicates if stats else 0,
            spooled=stats.spooled if stats else 0,
            lost=stats.lost if stats else 0,
            spool_dir=recorder.options.spool_dir or default_spool_dir(),
            refusal=stats.last_refusal if stats else None,
            failure=stats.last_failure if stats else None,
            leftovers_sent=stats.leftovers_sent if stats else 0,
            url=recorder.options.url,
            with_token=bool(recorder.options.token),
            overhead=overhead,
            errors=list(recorder.errors),
            highlights=recorder.highlights,
            classification=recorder.classification,
            classification_error=recorder.classification_error,
            quarantine=recorder.options.quarantine,
            quarantine_error=recorder.quarantine_error,
            quarantined_failures=recorder.quarantined_failures,
        )

    def _counts_text(self) -> str:
        keys = [k for k in _ORDER if self.counts.get(k)]
        keys += sorted(k for k in self.counts if k not in _ORDER and k != "warnings")
        return ", ".join(f"{self.counts[k]} {k}" for k in keys) or "no tests"

    def line(self) -> str:
        """The one line the plugin adds to pytest's output."""
        parts = [f"datacat: run {self.session_id[:8]}"]
        if self.delivered:
            parts += [f"{self.results} results recorded", self.run_url]
        elif self.spooled:
            spooled = "spooled" if not self.sent else "partly recorded, the rest spooled"
            parts += [
                f"{self.results} results {spooled}",
                f"{self.why}, {self.spooled} records in {self.spool_dir}"
                f" (send them with: {self.upload_command})",
            ]
        elif self.lost:
            parts.append(f"{self.results} results not sent ({self.why})")
        else:
            parts.append(
                f"{self.results} results, not all confirmed by the server before the flush timeout"
            )
        if verdict := self._verdict():
            parts.append(verdict)
        if self.quarantine:
            parts.append(self._quarantine_text())
        if self.leftovers_sent:
            parts.append(f"sent {self.leftovers_sent} records spooled by earlier runs")
        if self.lost:
            parts.append(f"{self.lost} records lost (spool {self.spool_dir} not writable)")
        parts.append(f"overhead {self.overhead:.2f}s")
        if self.errors:
            parts.append(f"{len(self.errors)} plugin errors (first: {self.errors[0][:120]})")
        return " · ".join(parts)

    def _verdict(self) -> str:
        """``2 new failures, 1 known flaky, 3 already failing, 1 fixed``."""
        if self.classification is None:
            if self.classification_error is None:
                return ""
            return f"classification unavailable ({self.classification_error[:80]})"
        counts = self.classification.get("counts", {})
        parts = []
        for key, one, many in VERDICTS:
            number = int(counts.get(key, 0))
            if number:
                parts.append(f"{number} {one if number == 1 else many}")
        return ", ".join(parts)

    def _quarantine_text(self) -> str:
        if self.quarantine_error is not None:
            return f"quarantine not applied ({self.quarantine_error[:80]})"
        number = len(self.quarantined_failures)
        if not number:
            return "no quarantined test failed"
        return (
            f"{number} quarantined test{'s' if number != 1 else ''} failed (not failing the build)"
        )

    @property
    def why(self) -> str:
        """Why records were not sent, in a few words."""
        if self.refusal:
            return f"server refused them ({self.refusal})"
        return self.failure or "server did not confirm them in time"

    @property
    def upload_command(self) -> str:
        """The command that sends what this run spooled, ready to paste."""
        command = f"datacat upload {shlex.quote(str(self.spool_dir))} --url {shlex.quote(self.url)}"
        return f"DATACAT_TOKEN=... {command}" if self.with_token else command

    def markdown(self) -> str:
        """A short Markdown summary for GitHub's job page."""
        lines = [
            f"### DataCat: {self._counts_text()} ({self.status}, {self.duration:.1f}s)",
            "",
        ]
        if self.delivered:
            lines.append(f"[Open this run in DataCat]({self.run_url})")
        elif self.spooled:
            lines.append(
                f"{self.spooled} records were spooled in `{self.spool_dir}` ({self.why});"
                f" send them with `{self.upload_command}`"
            )
        else:
            lines.append("The DataCat server did not confirm this run's records in time.")
        if self.quarantine:
            lines += ["", self._quarantine_text().capitalize() + "."]
            lines += [
                f"- `{_md(nodeid)}` (quarantined)" for nodeid in self.quarantined_failures[:20]
            ]
        if self.classification is not None:
            lines += self._classified_markdown()
        elif self.highlights.failures:
            if self.classification_error:
                lines += ["", f"Classification unavailable: {_md(self.classification_error)}"]
            lines += ["", f"**Failures ({self.highlights.failure_count})**", ""]
            lines += [
                f"- `{_md(nodeid)}`: {_md(message)}" for nodeid, message in self.highlights.failures
            ]
        slowest = sorted(self.highlights.slowest, reverse=True)
        if slowest:
            lines += ["", "**Slowest tests**", "", "| test | seconds |", "| --- | ---: |"]
            lines += [f"| `{_md(nodeid)}` | {seconds:.2f} |" for seconds, nodeid in slowest]
        return "\n".join(lines) + "\n"

    def _classified_markdown(self) -> list[str]:
        """The failures by category, new ones first, each with its message and a link."""
        assert self.classification is not None
        failures = self.classification.get("failures", [])
        lines: list[str] = []
        for key, heading in _SECTIONS:
            group = [f for f in failures if f.get("category") == key]
            if not group:
                continue
            lines += [
                "",
                f"**{heading} ({self.classification['counts'].get(key, len(group))})**",
                "",
            ]
            for failure in group[:20]:
                nodeid = str(failure.get("nodeid", ""))
                link = f"{self.url}/tests?nodeid={quote(nodeid)}"
                text = f"- [`{_md(nodeid)}`]({link})"
                message = failure.get("message")
                if message:
                    kind = failure.get("exc_type")
                    text += f": {_md((kind + ': ' if kind else '') + str(message))[:200]}"
                if key == "already_failing" and failure.get("since"):
                    text += f" (failing since {failure['since'][:16].replace('T', ' ')}"
                    commit = failure.get("since_commit")
                    text += f", commit `{commit[:10]}`)" if commit else ")"
                lines.append(text)
        fixed = self.classification.get("fixed", [])
        if fixed:
            lines += ["", f"**Fixed ({len(fixed)})**", ""]
            lines += [f"- `{_md(nodeid)}`" for nodeid in fixed[:20]]
        return lines

    def write_github_step_summary(self) -> None:
        target = os.environ.get("GITHUB_STEP_SUMMARY")
        if not target:
            return
        with open(target, "a", encoding="utf-8") as out:
            out.write(self.markdown())


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")

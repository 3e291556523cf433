#!/usr/bin/env python3
"""launch/plot_metrics.py's reader (read_records, loss_points), standard library only: after
a kill and a resume the curve must have strictly increasing steps, whether the file was
trimmed and marked by pfgm-train ({"event": "resumed"}) or written by an older pfgm whose
steps go back (issue 11, defect 5). Exit status is the verdict (unittest)."""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("PFGM_SOURCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SCRIPT = os.path.join(SRC, "launch", "plot_metrics.py")
spec = importlib.util.spec_from_file_location("plot_metrics", SCRIPT)
pm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pm)


def rec(step, loss, **kw):
    return json.dumps(dict(step=step, loss=loss, **kw)) + "\n"


def steps_of(lines):
    records, warnings = pm.read_records(lines, "m.jsonl")
    return [r["step"] for r in records], records, warnings


class ReadRecords(unittest.TestCase):
    def assert_increasing(self, steps):
        self.assertTrue(all(a < b for a, b in zip(steps, steps[1:])), steps)

    def test_older_file_steps_go_back(self):
        # killed after step 24 mid-line, resumed from the checkpoint of step 20 by an older
        # pfgm: the cut line and the first new record share a line, 21..24 appear twice
        lines = [rec(s, 1.0) for s in range(1, 25)]
        lines[-1] = lines[-1][:9] + rec(21, 2.0)  # '{"step": 2' + the next record
        lines += [rec(s, 2.0) for s in range(22, 31)]
        steps, records, warnings = steps_of(lines)
        # the joined line hides 24 (old) and 21 (new); 21 stays from the first run
        self.assertEqual(steps, list(range(1, 31)))
        self.assertEqual(len(warnings), 1)
        self.assertIn("m.jsonl:24:", warnings[0])
        self.assertEqual([r["loss"] for r in records if r["step"] in (20, 21, 22, 24)], [1.0, 1.0, 2.0, 2.0])

    def test_resumed_event_cuts_the_lost_steps(self):
        # log_freq 5: the killed run logged 25 past its checkpoint of 20; the resumed run was
        # killed again before logging 25, and resumed again from 20. Only the event says that
        # the 25 on file belongs to a lost run: the steps never go back.
        lines = [rec(s, 1.0) for s in (5, 10, 15, 20, 25)]
        lines.append(json.dumps({"event": "resumed", "resumed_from": 20, "dropped": 0, "time": "t"}) + "\n")
        lines.append(json.dumps({"event": "resumed", "resumed_from": 20, "dropped": 0, "time": "t"}) + "\n")
        lines += [rec(s, 2.0) for s in (30, 35)]
        steps, _, warnings = steps_of(lines)
        self.assertEqual(steps, [5, 10, 15, 20, 30, 35])
        self.assertEqual(warnings, [])

    def test_trimmed_file_is_read_as_is(self):
        # what pfgm-train leaves after pfgm_metrics_resume: 1..20, the event, 21..30
        lines = [rec(s, 1.0) for s in range(1, 21)]
        lines.append(json.dumps({"event": "resumed", "resumed_from": 20, "dropped": 4, "time": "t"}) + "\n")
        lines += [rec(s, 2.0) for s in range(21, 31)]
        steps, _, warnings = steps_of(lines)
        self.assertEqual(steps, list(range(1, 31)))
        self.assertEqual(warnings, [])

    def test_records_without_step_and_bad_lines(self):
        lines = [
            json.dumps({"event": "note"}) + "\n",
            rec(1, 0.5),
            "\n",
            "[1, 2]\n",
            json.dumps({"step": "7", "loss": 1.0}) + "\n",
            json.dumps({"step": True, "loss": 1.0}) + "\n",
            rec(2, None),
            rec(3, 0.25),
            "\x00" * 40,  # zero-filled tail of a power loss
        ]
        steps, records, warnings = steps_of(lines)
        self.assertEqual(steps, [1, 2, 3])
        self.assertEqual(len(warnings), 2)  # the list and the NULs; blank lines are silent
        # a null loss (a skipped step) is no point of the curve
        self.assertEqual(pm.loss_points(records), ([1, 3], [0.5, 0.25]))

    def test_later_null_record_replaces_earlier_value(self):
        lines = [rec(1, 1.0), rec(2, 1.0), rec(2, None), rec(3, 1.0)]
        steps, records, _ = steps_of(lines)
        self.assertEqual(pm.loss_points(records), ([1, 3], [1.0, 1.0]))

    def test_loss_window_preferred(self):
        records, _ = pm.read_records([rec(1, 9.0, loss_window=3.0), rec(2, 4.0)])
        self.assertEqual(pm.loss_points(records), ([1, 2], [3.0, 4.0]))

    def test_many_restarts_strictly_increasing(self):
        # kill/resume cycles of an older pfgm: each run resumes from a checkpoint behind the
        # last logged step; the result has every step once and the last run's values
        lines, run = [], 0
        for start, stop in ((1, 13), (10, 27), (25, 26), (20, 41)):
            run += 1
            lines += [rec(s, float(run)) for s in range(start, stop)]
        steps, records, _ = steps_of(lines)
        self.assertEqual(steps, list(range(1, 41)))
        self.assert_increasing(steps)
        self.assertEqual({r["step"]: r["loss"] for r in records}[19], 2.0)
        self.assertEqual({r["step"]: r["loss"] for r in records}[20], 4.0)


class CommandLine(unittest.TestCase):
    def test_no_finite_loss_exits_3(self):
        # the reading part of main() needs no matplotlib: exit 3 comes before the import
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "metrics.jsonl")
            with open(path, "w", encoding="utf-8") as f:
                f.write(rec(1, None) + '{"step": 2, "lo')
            p = subprocess.run([sys.executable, SCRIPT, path, os.path.join(d, "out.png")],
                               capture_output=True, text=True, check=False)
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assertIn(f"warning: {path}:2: skipped", p.stderr)
            self.assertIn("no finite loss values", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

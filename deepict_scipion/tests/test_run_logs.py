"""The run's log folder as it grows (deepict_scipion/run_logs.py): a step finds its error line, or a queued job the
scheduler's reason, in what the logs got while it ran, even while sqlite's journal comes and goes beside them."""

import glob
import os

from deepict_scipion import run_logs


def test_text_since_holds_only_what_each_log_got_after_the_snapshot(tmp_path):
    (tmp_path / "run.stdout").write_text("an earlier step\n")
    pattern = str(tmp_path / "*")
    sizes = run_logs.log_sizes(pattern)
    with open(tmp_path / "run.stdout", "a") as handle:
        handle.write("deepict pick: error: no such file\n")
    (tmp_path / "7-1-1.out").write_text("deepict queue job 7 on vm\n")
    os.utime(tmp_path / "run.stdout", (1, 1))  # the least recently written comes first
    assert run_logs.text_since(pattern, sizes) == ["deepict pick: error: no such file\n",
                                                   "deepict queue job 7 on vm\n"]


def test_a_log_that_goes_while_listed_is_left_out(tmp_path, monkeypatch):
    """CI saw run.db-journal listed by glob and gone before its size was read: the step failed with
    FileNotFoundError instead of running."""
    (tmp_path / "run.stdout").write_text("step 1\n")
    gone = str(tmp_path / "run.db-journal")
    listed = glob.glob(str(tmp_path / "*")) + [gone]
    monkeypatch.setattr(run_logs.glob, "glob", lambda pattern: listed)
    assert run_logs.log_sizes("any") == {str(tmp_path / "run.stdout"): 7}
    assert run_logs.text_since("any", {}) == ["step 1\n"]
    (tmp_path / "sub").mkdir()
    listed.append(str(tmp_path / "sub"))
    assert list(run_logs.log_sizes("any")) == [str(tmp_path / "run.stdout")]

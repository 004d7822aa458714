"""Importing a folder of saved pages: which files are captures, and in which order they are taken."""

import datetime as dt
import os

from bench.render import block_page
from pipeline.paths import DataDir
from pipeline.sources.folder import folder_entries, import_folder, skipped_files

CAPTURED = dt.date(2026, 3, 4)


def page(title: str) -> str:
    return block_page([{"title": title, "abstract": f"We study {title}.", "published_on": CAPTURED,
                        "upvotes": 3, "author_count": 2}], CAPTURED)


def test_a_folder_is_read_in_path_order_without_hidden_files_or_links(tmp_path):
    folder = tmp_path / "captures"
    (folder / "a" / ".drafts").mkdir(parents=True)
    (folder / ".old").mkdir()
    (folder / "a" / "b.txt").write_text(page("Paper B"))
    (folder / "a-c.txt").write_text(page("Paper B"))  # the same bytes: the same capture
    (folder / "a" / ".drafts" / "d.txt").write_text(page("Paper D"))
    (folder / ".old" / "e.txt").write_text(page("Paper E"))
    (folder / "z.txt").write_text(page("Paper Z"))
    os.symlink(folder / "a", folder / "linked")  # a folder reached by a link is not entered
    os.symlink(folder / "z.txt", folder / "y.txt")
    os.mkfifo(folder / "pipe")  # neither a file nor a folder

    captures = import_folder(DataDir(tmp_path / "data"), folder, set())

    # Paths compare by their parts: `a/b.txt` comes before `a-c.txt`, though "/" sorts after "-",
    # so the capture both files hold is named by `a/b.txt`.
    assert [path.relative_to(folder).as_posix() for path, _ in folder_entries(folder)] == [
        ".old/e.txt", "a/.drafts/d.txt", "a/b.txt", "a-c.txt", "linked", "y.txt", "z.txt"]
    assert captures["origin"].to_list() == ["a/b.txt", "z.txt"]
    assert skipped_files(folder) == {".old/e.txt": "hidden file", "a/.drafts/d.txt": "hidden file",
                                     "linked": "symbolic link, not followed", "y.txt": "symbolic link, not followed"}

"""Atomic file writes: everything the project writes for keeps (checkpoints, exports,
results, record files, generated docs) goes to a temporary name in the target directory and is
renamed into place, so an interrupted write never leaves a file that looks complete.

Temporary files are created exclusively (``O_EXCL``) under a name with a random token, never
under a name derived from the target alone: two processes writing the same target (two
conversions started on one data set, a benchmark run twice) then each write their own file and
the last rename wins, instead of both writing through one ``target.tmp`` and renaming a mix.
"""
import contextlib
import hashlib
import os
import secrets

__all__ = ["atomic_write", "atomic_write_text", "atomic_open", "create_exclusive", "file_digest",
           "replace_all", "temp_for"]


def create_exclusive(paths_for, attempts=100):
    """Create the empty files ``paths_for(token)`` (a list of paths) for a fresh random token
    of 8 hex digits, each with ``O_CREAT | O_EXCL``, so that no file someone else made (a
    leftover, another process that drew the same token, a planted link) is ever written
    through. On a clash the files made so far are removed and another token is drawn.
    Returns ``(token, paths)``; the files have the mode a plain ``open`` would give them."""
    for _ in range(attempts):
        token = secrets.token_hex(4)
        paths, made = list(paths_for(token)), []
        try:
            for path in paths:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                made.append(path)
            return token, paths
        except FileExistsError:
            pass
        finally:
            if len(made) < len(paths):  # a clash, or any other error: leave nothing behind
                for path in made:
                    os.remove(path)
    raise FileExistsError("no free temporary name after %d tries: %s"
                          % (attempts, paths_for("<token>")))


def replace_all(moves):
    """Rename each ``(tmp, path)`` of ``moves`` onto its path, in order. With several moves
    the last path is the one whose presence says the set is complete (a ``.rec`` next to its
    ``.idx`` and ``.lst``): it is removed before the others are replaced, so that an
    interruption between the renames never leaves the old one next to new companions."""
    moves = list(moves)
    if len(moves) > 1:
        try:
            os.remove(moves[-1][1])
        except FileNotFoundError:  # none yet, or a concurrent writer of the set removed it
            pass
    for tmp, path in moves:
        os.replace(tmp, path)  # same directory, hence the same file system: atomic


@contextlib.contextmanager
def temp_for(path):
    """A new temporary path next to ``path`` (its directory is created); the file is removed
    when the block ends without having renamed it, error or not. For a set of files renamed
    together (:func:`replace_all`), one block per file."""
    directory, base = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    _, (tmp,) = create_exclusive(lambda token: [os.path.join(directory,
                                                             ".%s.%s.tmp" % (base, token))])
    try:
        yield tmp
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, write):
    """Call ``write(tmp_path)`` for a temporary path next to ``path``, then rename it onto
    ``path``. The directory is created; the temporary file is removed on any failure."""
    with temp_for(path) as tmp:
        write(tmp)
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_open(path, mode="w", **open_kwargs):
    """``with atomic_open(path) as f:`` writes ``f`` to a temporary file next to ``path``,
    synced and renamed onto ``path`` when the block ends, removed if it raises. ``mode`` is a
    writing mode (``"w"``, ``"wb"``): the file always starts empty."""
    if "w" not in mode:
        raise ValueError("atomic_open writes a new file: mode must contain 'w', got %r"
                         % (mode,))
    with temp_for(path) as tmp:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def file_digest(path, algorithm="sha256"):
    """Hex digest of the file ``path``, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

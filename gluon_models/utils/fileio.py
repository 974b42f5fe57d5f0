"""Atomic file writes: everything the project writes for keeps (checkpoints, exports,
results, generated docs) goes to a temporary name in the target directory and is renamed
into place, so an interrupted write never leaves a file that looks complete."""
import os
import tempfile

__all__ = ["atomic_write", "atomic_write_text"]


def atomic_write(path, write):
    """Call ``write(tmp_path)`` for a temporary path next to ``path``, then rename it onto
    ``path``. The directory is created; the temporary file is removed on any failure."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp",
                               dir=directory)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    atomic_write(path, write)

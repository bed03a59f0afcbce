"""Files that fastnet writes: all at once or not at all, and checked before a long run."""
import errno
import os
import stat
import tempfile

#: Prefix of the temporary files written beside a target. Short and fixed: a prefix built from
#: the target's name made a legal 250-byte name exceed the 255-byte limit once extended.
_TMP_PREFIX = ".fastnet-"


def atomic_write(path, write, mode="wb"):
    """Write ``path`` through ``write(file)`` into a temporary file in the same folder, then
    rename it over ``path``: an interrupted write leaves the old file (or none), never half a
    file. The file gets the permissions a plain ``open`` would give: an existing file's own,
    else the umask's; an existing file this process may not write is refused
    (``PermissionError``), as ``open`` would refuse it (the rename needs only the folder's
    permission, and replaced a read-only file: an audit). A symbolic link is written through:
    its target is replaced, the link stays. A device, FIFO or socket is refused
    (``ValueError``): the rename would replace it with a plain file (``--save /dev/null`` run
    as root would replace ``/dev/null``), and so is a name that ends in ``/``, ``.`` or
    ``..``."""
    path = _through_links(path)
    folder = os.path.dirname(os.path.abspath(path))
    # Else mkstemp's or the rename's error would name the temporary file.
    if not os.path.isdir(folder):
        kind = NotADirectoryError if os.path.exists(folder) else FileNotFoundError
        raise kind(f"cannot write {path}: {_not_a_folder(folder)}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    if _names_a_folder(path):      # else the rename's error: "Not a directory", "No such file"
        raise ValueError(f"cannot write {path}: names a folder, not a file; give a file name")
    special = _special_file(path)
    if special:
        raise ValueError(f"cannot write {path}: {special}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, f"cannot write {path}: the file is read-only for "
                                            f"this user; make it writable, or give another name")
    too_long = _name_too_long(path, folder)
    if too_long:
        raise OSError(errno.ENAMETOOLONG, f"cannot write {path}: {too_long}")
    mode_bits = _existing_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=folder)
    except OSError as err:           # a read-only folder or file system, no space: name path
        raise _naming(err, path) from err
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode_bits is None:
            umask = os.umask(0)
            os.umask(umask)
            mode_bits = 0o666 & ~umask
        os.chmod(tmp, mode_bits)               # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError) and err.errno is not None:
            raise _naming(err, path) from err  # a full disk: name path, not the temporary file
        raise


def _names_a_folder(path):
    """Whether ``path`` ends in a separator, ``.`` or ``..``: abspath drops those, so the
    folder checks would pass on the parent."""
    name = os.fsdecode(path)
    return name.endswith(("/", os.sep)) or os.path.basename(name) in (".", "..")


def _through_links(path):
    """``path``, or the file its symbolic links lead to (``OSError`` ELOOP for a loop)."""
    if not os.path.islink(path):
        return path
    target = os.path.realpath(path)
    if os.path.islink(target):         # realpath stops where the links go round in a circle
        raise OSError(errno.ELOOP, f"cannot write {path}: its symbolic links form a loop")
    return target


def _naming(err, path):
    """``err`` (an ``OSError``) again, of the same kind, its message naming ``path``."""
    return OSError(err.errno, f"cannot write {path}: {err.strerror}")


def _not_a_folder(folder):
    """Why ``folder``, which is not a folder, cannot hold a file."""
    if os.path.exists(folder):
        return f"{folder} is a file, not a folder"
    return f"the folder {folder} does not exist"


def special_kind(path):
    """What ``path`` is ("a FIFO", "a character device", ...) when it exists but is neither a
    regular file nor a folder, else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")


def _special_file(path):
    """Why a save may not write to ``path`` when it is a device, FIFO or socket, else None."""
    kind = special_kind(path)
    if kind is None:
        return None
    return f"it is {kind}, which a save would replace with a plain file; give a file name"


def _existing_mode(path):
    """The permission bits of the file at ``path``, or None when there is none."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _name_too_long(path, folder):
    """What is wrong when ``path``'s file name is longer than ``folder`` allows, else None
    (the rename's own error would name the temporary file, not ``path``)."""
    name = len(os.fsencode(os.path.basename(path)))
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):          # not known here (e.g. Windows)
        return None
    if name > limit:
        return f"the file name is {name} bytes long; the folder allows at most {limit}"
    return None


def check_writable(option, path):
    """Raise ``ValueError`` naming ``option`` unless a command could write the file ``path``
    (``--save``, ``--plot``, ``--json``): checked before the long run that produces it, so that
    a bad path fails at once instead of after the run."""
    if not path:
        raise ValueError(f"{option}: the file name is empty")
    try:
        target = _through_links(path)
    except OSError:
        raise ValueError(f"{option} {path}: its symbolic links form a loop") from None
    folder = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(path):
        raise ValueError(f"{option} {path}: is a directory; give a file name")
    if _names_a_folder(path):
        raise ValueError(f"{option} {path}: names a folder, not a file; give a file name")
    special = _special_file(path)
    if special:
        raise ValueError(f"{option} {path}: {special}")
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path}: {_not_a_folder(folder)}")
    too_long = _name_too_long(target, folder)
    if too_long:
        raise ValueError(f"{option} {path}: {too_long}")
    if os.path.exists(target) and not os.access(target, os.W_OK):      # as atomic_write
        raise ValueError(f"{option} {path}: the file is read-only for this user; make it "
                         f"writable, or give another name")
    # Create a file, rather than asking os.access: for root, os.access passes on read-only
    # mounts and on /proc, where creating a file fails.
    try:
        fd, probe = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=folder)
    except OSError as err:
        raise ValueError(f"{option} {path}: cannot create files in {folder} "
                         f"({err.strerror})") from None
    os.close(fd)
    os.unlink(probe)

"""Train/val image-folder datasets to RecordIO, with one class index shared by both splits.

The layouts of the MPN-COV seed's datasets (spec mpncov.md §5.5, §6), as distributed:

``imagefolder``
    ``ROOT/train/<class>/...`` and ``ROOT/val/<class>/...`` (torchvision's ImageFolder, what
    the seed's ``main.py`` reads). Classes are the sub-folders of ``train/`` in sorted order;
    a class folder of ``val/`` that ``train/`` lacks is an error. Images are found at any
    depth below a class folder (sorted walk), by extension.
``cub``
    CUB-200-2011: ``images.txt`` (``id path``), ``image_class_labels.txt`` (``id class``,
    1-based), ``train_test_split.txt`` (``id is_training``), ``classes.txt`` (``class name``)
    and ``images/``, in ``ROOT`` or ``ROOT/CUB_200_2011``. val = the test split.
``aircraft``
    FGVC-Aircraft 2013b, variant level: ``data/variants.txt`` (one name per line, the class
    order), ``data/images_variant_trainval.txt`` / ``images_variant_test.txt`` (``id
    variant``) and ``data/images/<id>.jpg``, in ``ROOT``, ``ROOT/fgvc-aircraft-2013b`` or
    ``ROOT/data``. train = trainval, val = test.
``places365``
    Places365-Standard (Zhou et al., TPAMI 2017, http://places2.csail.mit.edu): the lists
    ``places365_train_standard.txt`` (``/a/abbey/00000000.jpg 0``), ``places365_val.txt``
    (``Places365_val_00000001.jpg 165``) and ``categories_places365.txt`` (``/a/airfield 0``),
    in ``ROOT`` or ``ROOT/filelist_places365-standard``; training images in ``ROOT/data_256``
    (or ``data_large``), validation images in ``ROOT/val_256`` (or ``val_large``). 365
    classes; labels as the lists give them. GM-SOP trains on it at 100 x 100
    (``tools/prepare_places365.py``).
``cars``
    Stanford Cars: ``devkit/cars_meta.mat`` (``class_names``), ``devkit/cars_train_annos.mat``
    and ``cars_test_annos_withlabels.mat`` (in ``ROOT`` or ``devkit/``; ``annotations`` with
    ``fname`` and 1-based ``class``), images in ``cars_train/`` and ``cars_test/``.

:func:`convert_folder_dataset` writes ``OUT/train.*`` and ``OUT/val.*`` (``.lst`` with paths
relative to the image root, ``.rec``, ``.idx``) and ``OUT/classes.txt`` (``label \\t name``).
Record ``index`` is the image's position in its split's listing order (by image id, or by
sorted path); the training list is then shuffled with a fixed seed (records are written in
list order and some readers only shuffle within chunks), the validation list keeps its order.
A missing metadata file, or one that is malformed or inconsistent with the others, is an error
naming it; a missing or unreadable image is skipped and listed in ``OUT/<split>.skipped``
(``strict``: an error), as in :mod:`.folder`.
"""
import collections
import hashlib
import logging
import os
import random

from ..utils.fileio import atomic_open
from .datasets import DataFormatError
from .folder import IMAGE_EXTS, ImageLoader, _normalize_exts, walk_tree
from .recordio import (Refused, escape_name, lst_name_problem, needs_write, partial_runs,
                       write_records)

__all__ = ["LAYOUTS", "FolderDataset", "detect_layout", "read_imagefolder", "read_cub",
           "read_aircraft", "read_cars", "read_places365", "read_folder_dataset",
           "convert_folder_dataset"]

_LOG = logging.getLogger(__name__)
_SHUFFLE_SEED = 100

FolderDataset = collections.namedtuple("FolderDataset", [
    "layout",      # one of LAYOUTS
    "image_root",  # the paths of `splits` are relative to it
    "classes",     # class names; label = position
    "splits",      # {"train": [(path, label)], "val": [(path, label)]}
    "refused",     # {split: [(path, reason)]}: images whose path or class name cannot be
                   # written into a .lst / classes.txt (see _refuse_unwritable_names)
], defaults=(None,))


# ------------------------------------------------------------------------------------------
# Metadata readers

def _require(path):
    if not os.path.isfile(path):
        raise FileNotFoundError("metadata file not found: %s" % path)
    return path


def _read_pairs(path, value=str, key=int):
    """``[(line number, id, value)]`` of an ``id value`` text file (value: the rest of the
    line); DataFormatError naming the file and line otherwise."""
    out = []
    with open(_require(path)) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.strip().split(None, 1)
            try:
                if len(parts) != 2:
                    raise ValueError("expected '<id> <value>'")
                out.append((n, key(parts[0]), value(parts[1])))
            except ValueError as e:
                raise DataFormatError("%s line %d: %s: %r" % (path, n, e, line.rstrip("\n"))) \
                    from None
    if not out:
        raise DataFormatError("%s: empty" % path)
    return out


def _id_map(path, value=str):
    out = {}
    for n, key, val in _read_pairs(path, value):
        if key in out:
            raise DataFormatError("%s line %d: id %d appears twice" % (path, n, key))
        out[key] = val
    return out


def _list_class_images(folder, exts, tree):
    """The images under one class folder; a link into ``tree`` (the split's folder) is not
    followed, so an image is listed once, under its own class (see ``walk_tree``)."""
    found = []
    for path, dirs, files in walk_tree(folder, tree):
        for fname in files:
            if os.path.splitext(fname)[1].lower() in exts:
                found.append(os.path.join(path, fname))
    return found


def read_imagefolder(root, exts=IMAGE_EXTS, train="train", val="val"):
    """:class:`FolderDataset` of an ImageFolder ``train/`` + ``val/`` tree."""
    root = os.path.abspath(root)
    exts = _normalize_exts(exts)
    dirs = {}
    for split, name in (("train", train), ("val", val)):
        dirs[split] = os.path.join(root, name)
        if not os.path.isdir(dirs[split]):
            raise FileNotFoundError("%s folder not found: %s" % (split, dirs[split]))
    classes = sorted(d for d in os.listdir(dirs["train"])
                     if os.path.isdir(os.path.join(dirs["train"], d)))
    if not classes:
        raise DataFormatError("%s: no class folders" % dirs["train"])
    label = {c: i for i, c in enumerate(classes)}
    extra = sorted(d for d in os.listdir(dirs["val"]) if os.path.isdir(
        os.path.join(dirs["val"], d)) and d not in label)
    if extra:
        raise DataFormatError("%s: class folder(s) %s are not in %s" % (
            dirs["val"], ", ".join(extra), dirs["train"]))
    splits = {}
    for split, folder in dirs.items():
        items = []
        for c in classes:
            class_dir = os.path.join(folder, c)
            if not os.path.isdir(class_dir):
                continue
            found = _list_class_images(class_dir, exts, folder)
            if not found and split == "train":
                _LOG.warning("%s: no images", class_dir)
            items += [(os.path.relpath(p, root), label[c]) for p in found]
        if not items:
            raise DataFormatError("%s: no images with extension %s" % (folder, ", ".join(exts)))
        splits[split] = items
    return FolderDataset("imagefolder", root, classes, splits)


def _first_existing(root, candidates, marker):
    for c in candidates:
        if os.path.isfile(os.path.join(root, c, marker)):
            return os.path.join(root, c)
    return None


def read_cub(root):
    """:class:`FolderDataset` of CUB-200-2011 (``root`` or ``root/CUB_200_2011``)."""
    root = os.path.abspath(root)
    base = _first_existing(root, ("", "CUB_200_2011"), "images.txt") or root
    files = {k: os.path.join(base, k + ".txt") for k in
             ("images", "image_class_labels", "train_test_split", "classes")}
    class_names = _id_map(files["classes"])
    ids = sorted(class_names)
    if ids != list(range(1, len(ids) + 1)):
        raise DataFormatError("%s: class ids must be 1..%d without gaps" % (files["classes"],
                                                                          len(ids)))
    classes = [class_names[i] for i in ids]
    images = _id_map(files["images"])
    labels = _id_map(files["image_class_labels"], int)
    is_train = _id_map(files["train_test_split"], int)
    for key, mapping in (("image_class_labels", labels), ("train_test_split", is_train)):
        missing = sorted(set(images) - set(mapping))
        unknown = sorted(set(mapping) - set(images))
        if missing or unknown:
            raise DataFormatError("%s: %s image id %d %s" % (
                files[key], "no entry for" if missing else "unknown",
                (missing or unknown)[0], "of images.txt" if missing else "(not in images.txt)"))
    for image_id, lab in labels.items():
        if not 1 <= lab <= len(classes):
            raise DataFormatError("%s: image %d has class %d, outside 1..%d"
                                  % (files["image_class_labels"], image_id, lab, len(classes)))
    for image_id, flag in is_train.items():
        if flag not in (0, 1):
            raise DataFormatError("%s: image %d has is_training_image %d (must be 0 or 1)"
                                  % (files["train_test_split"], image_id, flag))
    splits = {"train": [], "val": []}
    for image_id in sorted(images):
        split = "train" if is_train[image_id] else "val"
        splits[split].append((os.path.join("images", images[image_id]), labels[image_id] - 1))
    return FolderDataset("cub", base, classes, splits)


def read_aircraft(root):
    """:class:`FolderDataset` of FGVC-Aircraft (variants; train = trainval, val = test)."""
    root = os.path.abspath(root)
    marker = "variants.txt"
    data = _first_existing(root, ("", "data", "fgvc-aircraft-2013b/data"), marker) or \
        os.path.join(root, "data")
    names_path = _require(os.path.join(data, marker))
    with open(names_path) as f:
        classes = [line.strip() for line in f if line.strip()]
    if not classes:
        raise DataFormatError("%s: empty" % names_path)
    label = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split, name in (("train", "images_variant_trainval.txt"),
                        ("val", "images_variant_test.txt")):
        path = os.path.join(data, name)
        items = []
        # Image ids are 7-digit names with leading zeros: kept as written.
        for n, image_id, variant in _read_pairs(path, key=str):
            if variant.strip() not in label:
                raise DataFormatError("%s line %d: variant %r is not in %s"
                                      % (path, n, variant, names_path))
            items.append((os.path.join("images", "%s.jpg" % image_id), label[variant.strip()]))
        splits[split] = items
    return FolderDataset("aircraft", data, classes, splits)


def _mat_struct_field(annotations, field, path):
    try:
        return [x for x in annotations[field].ravel()]
    except (KeyError, ValueError, IndexError):
        raise DataFormatError("%s: 'annotations' has no field %r" % (path, field)) from None


def read_cars(root):
    """:class:`FolderDataset` of Stanford Cars (devkit ``.mat`` files)."""
    import scipy.io
    root = os.path.abspath(root)

    def load(path, key):
        _require(path)
        try:
            mat = scipy.io.loadmat(path, squeeze_me=True)
        except Exception as e:  # noqa: BLE001  (scipy raises several types for a bad file)
            raise DataFormatError("%s: not a readable MATLAB file (%s: %s)"
                                  % (path, type(e).__name__, e)) from None
        if key not in mat:
            raise DataFormatError("%s: no variable %r" % (path, key))
        return mat[key]

    meta = os.path.join(root, "devkit", "cars_meta.mat")
    classes = [str(c) for c in load(meta, "class_names").ravel()]
    test_annos = os.path.join(root, "cars_test_annos_withlabels.mat")
    if not os.path.isfile(test_annos):
        test_annos = os.path.join(root, "devkit", "cars_test_annos_withlabels.mat")
    splits = {}
    for split, path, folder in (
            ("train", os.path.join(root, "devkit", "cars_train_annos.mat"), "cars_train"),
            ("val", test_annos, "cars_test")):
        annotations = load(path, "annotations")
        names = _mat_struct_field(annotations, "fname", path)
        labels = _mat_struct_field(annotations, "class", path)
        items = []
        for fname, lab in zip(names, labels):
            lab = int(lab)
            if not 1 <= lab <= len(classes):
                raise DataFormatError("%s: %s has class %d, outside 1..%d"
                                      % (path, fname, lab, len(classes)))
            items.append((os.path.join(folder, str(fname)), lab - 1))
        splits[split] = sorted(items)
    return FolderDataset("cars", root, classes, splits)


def _places365_dir(root, names, what):
    for name in names:
        if os.path.isdir(os.path.join(root, name)):
            return name
    raise FileNotFoundError("%s: no %s image folder (%s)" % (root, what, " or ".join(names)))


def read_places365(root):
    """:class:`FolderDataset` of Places365-Standard (see the module docstring)."""
    root = os.path.abspath(root)
    lists = _first_existing(root, ("", "filelist_places365-standard"),
                            "places365_train_standard.txt") or root
    names = {}
    for n, name, label in _read_pairs(os.path.join(lists, "categories_places365.txt"),
                                      value=str, key=str):
        try:
            names[int(label)] = name.lstrip("/")
        except ValueError:
            raise DataFormatError("%s line %d: label %r is not an integer" % (
                os.path.join(lists, "categories_places365.txt"), n, label)) from None
    if sorted(names) != list(range(len(names))):
        raise DataFormatError("%s: labels must be 0..%d without gaps"
                              % (os.path.join(lists, "categories_places365.txt"),
                                 len(names) - 1))
    classes = [names[i] for i in range(len(names))]
    folders = {"train": _places365_dir(root, ("data_256", "data_large"), "training"),
               "val": _places365_dir(root, ("val_256", "val_large"), "validation")}
    splits = {}
    for split, name in (("train", "places365_train_standard.txt"),
                        ("val", "places365_val.txt")):
        path = os.path.join(lists, name)
        items = []
        # "path label" per line: the path comes first here, so it is the key
        for n, rel, label in _read_pairs(path, value=str, key=str):
            try:
                label = int(label)
            except ValueError:
                label = -1
            if not 0 <= label < len(classes):
                raise DataFormatError("%s line %d: label %r is not one of 0..%d"
                                      % (path, n, label, len(classes) - 1))
            items.append((os.path.join(folders[split], rel.lstrip("/")), label))
        splits[split] = items
    return FolderDataset("places365", root, classes, splits)


_READERS = {"imagefolder": read_imagefolder, "cub": read_cub, "aircraft": read_aircraft,
            "cars": read_cars, "places365": read_places365}
LAYOUTS = tuple(_READERS)

# layout -> files whose presence identifies it (relative to the root, any one set)
_MARKERS = {
    "cub": ("images.txt", "CUB_200_2011/images.txt"),
    "aircraft": ("variants.txt", "data/variants.txt", "fgvc-aircraft-2013b/data/variants.txt"),
    "cars": ("devkit/cars_train_annos.mat",),
    "places365": ("places365_train_standard.txt",
                  "filelist_places365-standard/places365_train_standard.txt"),
}


def detect_layout(root, train="train"):
    """The layout of ``root`` (see the module docstring; ``train`` is the ImageFolder training
    folder's name); FileNotFoundError saying what was looked for otherwise."""
    for layout, markers in _MARKERS.items():
        if any(os.path.isfile(os.path.join(root, m)) for m in markers):
            return layout
    if os.path.isdir(os.path.join(root, train)):
        return "imagefolder"
    raise FileNotFoundError(
        "%s: no known layout: expected %s/ class folders, or %s" % (
            root, train, "; ".join("%s (%s)" % (k, " or ".join(v))
                                   for k, v in _MARKERS.items())))


def read_folder_dataset(root, layout=None, **kwargs):
    """:class:`FolderDataset` of ``root`` in ``layout`` (detected when None). Classes and
    images whose names cannot be written are moved to ``refused`` (see
    :func:`_refuse_unwritable_names`)."""
    root = os.path.abspath(os.path.expanduser(root))
    layout = layout or detect_layout(root, kwargs.get("train", "train"))
    if layout not in _READERS:
        raise ValueError("layout must be one of %s, got %r" % (", ".join(LAYOUTS), layout))
    return _refuse_unwritable_names(_READERS[layout](root, **kwargs))


def _refuse_unwritable_names(data):
    """``data`` without the classes and images whose names would corrupt ``classes.txt`` or
    a ``.lst`` (a tab or line break in a class, folder or file name; see
    :func:`~gluon_models.data.recordio.lst_name_problem`): those images go to
    ``data.refused`` with the reason, the remaining classes are numbered again in order."""
    bad = {}
    for i, name in enumerate(data.classes):
        problem = lst_name_problem(name)
        if problem:
            bad[i] = "class name %s: %s" % (escape_name(name), problem.replace("the name ", ""))
            _LOG.warning("%s: refusing class %s: %s", data.image_root, escape_name(name), problem)
    new_label, classes = {}, []
    for i, name in enumerate(data.classes):
        if i not in bad:
            new_label[i] = len(classes)
            classes.append(name)
    splits, refused = {}, {}
    for split, items in data.splits.items():
        kept, out = [], list((data.refused or {}).get(split, []))
        for path, label in items:
            reason = bad.get(label) or lst_name_problem(path)
            if reason:
                out.append((path, reason))
            else:
                kept.append((path, new_label[label]))
        splits[split], refused[split] = kept, out
        if out:
            _LOG.warning("%s %s: %d image(s) refused (listed in %s.skipped)", data.image_root,
                         split, len(out), split)
    return data._replace(classes=classes, splits=splits, refused=refused)


def _write_classes(path, classes):
    for name in classes:  # _refuse_unwritable_names took them out; never write one
        problem = lst_name_problem(name)
        if problem:
            raise ValueError("%s: class %s: %s" % (path, escape_name(name), problem))
    with atomic_open(path) as f:
        for i, name in enumerate(classes):
            f.write("%d\t%s\n" % (i, name))


def convert_folder_dataset(root, out_dir, layout=None, splits=("train", "val"), shuffle=True,
                           resize=0, center_crop=False, color=1, pass_through=False,
                           inter_method=1, quality=95, encoding=".jpg", num_workers=1,
                           backend="thread", strict=False, resume=False, overwrite=False,
                           progress=True, square=False, **layout_options):
    """Convert a train/val dataset (see the module docstring) to ``OUT/<split>.*`` records.

    Parameters
    ----------
    root : str
        The dataset's folder.
    out_dir : str
        Where ``train.*``, ``val.*`` and ``classes.txt`` go.
    layout : {'imagefolder', 'cub', 'aircraft', 'cars'}, optional
        Detected from the files present when omitted.
    splits : sequence of {'train', 'val'}
    shuffle : bool
        Shuffle the training list (seed 100).
    resize, center_crop, color, pass_through, inter_method, quality, encoding, square
        Image options, as in :class:`~gluon_models.data.folder.ImageLoader`.
    num_workers, backend, strict, progress
        As in :func:`~gluon_models.data.folder.convert_lst`.
    resume : bool
        Continue an interrupted conversion of a split.
    overwrite : bool
        Rewrite splits whose records exist (else they are kept).
    **layout_options
        Passed to the layout's reader (``imagefolder``: ``exts``, ``train``, ``val`` folder
        names).

    Returns
    -------
    dict
        ``split -> WriteResult`` (None for a split that was kept).
    """
    for s in splits:
        if s not in ("train", "val"):
            raise ValueError("splits are 'train' and 'val', got %r" % (s,))
    data = read_folder_dataset(root, layout, **layout_options)
    refused = {s: data.refused.get(s, []) for s in splits}
    if strict and any(refused.values()):
        path, reason = next(r for rs in refused.values() for r in rs)
        raise DataFormatError("%s: %s: %s (and %d more refused)" % (
            data.image_root, escape_name(path), reason, sum(map(len, refused.values())) - 1))
    os.makedirs(out_dir, exist_ok=True)
    _write_classes(os.path.join(out_dir, "classes.txt"), data.classes)
    _LOG.info("%s (%s): %d classes, %s", root, data.layout, len(data.classes),
              ", ".join("%s %d images" % (s, len(v)) for s, v in data.splits.items()))
    loader = ImageLoader(data.image_root, resize, center_crop, color, pass_through, inter_method,
                         square)
    if encoding == ".png":
        quality = min(int(quality), 9)
    results = {}
    for split in splits:
        prefix = os.path.join(out_dir, split)
        if not (resume and partial_runs(prefix)) and not needs_write(prefix, overwrite):
            results[split] = None
            continue
        items = [(i, label, path, path) for i, (path, label) in enumerate(data.splits[split])]
        if shuffle and split == "train":
            random.Random(_SHUFFLE_SEED).shuffle(items)
        # Refused images follow, never encoded: write_records lists them as skipped.
        items += [(len(items) + j, 0, Refused(reason), path)
                  for j, (path, reason) in enumerate(refused[split])]
        listing = hashlib.sha1("".join("%d\t%d\t%s\n" % item[:3] for item in items).encode())
        signature = dict(layout=data.layout, root=data.image_root, split=split,
                         items=listing.hexdigest(), **loader.options())
        results[split] = write_records(
            prefix, items, encoding=encoding, quality=quality, num_workers=num_workers,
            progress=progress, chunksize=32, transform=loader, skip_errors=not strict,
            log_every=1000, resume=resume, signature=signature, backend=backend)
    return results

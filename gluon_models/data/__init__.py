"""Datasets as im2rec-compatible RecordIO, and the record iterators that read them.

* :mod:`.datasets`: the dataset table (classes, sizes, mean/std, files), ``DataFormatError``,
  default directories;
* :mod:`.recordio`: :func:`write_records`, the one ``.lst/.rec/.idx`` writer (parallel,
  ordered, atomic);
* converters: :func:`convert_cifar` (CIFAR-10/100 pickles), :func:`convert_svhn` (SVHN
  ``.mat``), :func:`convert_digits` (scikit-learn digits, the embedded default),
  :func:`convert_imagenet64` (downsampled ImageNet 64/32/16, pickles or ``.npz``);
* :mod:`.folder`: image folders, im2rec's way (:func:`make_image_lists`, :func:`im2rec`,
  :func:`convert_lst`; ``tools/im2rec.py``); :mod:`.finegrained`: train/val datasets
  (ImageFolder, CUB-200-2011, FGVC-Aircraft, Stanford Cars) with one class index
  (:func:`convert_folder_dataset`; ``tools/prepare_folder.py``);
* :mod:`.presets`: the seeds' augmentation presets and the ``Data``/``Augmentation`` options;
* :mod:`.iterators`: :func:`get_rec_iters` (``ImageRecordIter`` train/val pair), exact
  evaluation helpers.
"""
from .datasets import (DATASETS, DataFormatError, DatasetInfo, default_data_dir,
                       default_data_root, get_dataset_info, list_datasets, split_files)
from .recordio import (WriteResult, add_convert_args, convert_options_from_args, read_lst,
                       records_exist, write_lst, write_records)
from .cifar import convert_cifar, load_cifar_batch
from .svhn import convert_svhn, load_svhn_mat
from .digits import convert_digits, digits_images, digits_split, ensure_digits
from .imagenet64 import convert_imagenet64, load_imagenet64_batch
from .folder import convert_lst, im2rec, make_image_lists
from .finegrained import convert_folder_dataset
from .presets import AUG_PRESETS, add_aug_args, add_data_args, apply_presets, resolve_aug
from .iterators import (FreshIter, PadCropIter, count_records, get_rec_iters, iters_from_args,
                        strip_pad, update_metric)

__all__ = ["DATASETS", "DataFormatError", "DatasetInfo", "default_data_dir", "default_data_root",
           "get_dataset_info", "list_datasets", "split_files", "WriteResult", "add_convert_args",
           "convert_options_from_args", "read_lst", "records_exist", "write_lst",
           "write_records",
           "convert_cifar", "load_cifar_batch", "convert_svhn", "load_svhn_mat",
           "convert_digits", "digits_images", "digits_split", "ensure_digits",
           "convert_imagenet64", "load_imagenet64_batch", "convert_lst",
           "im2rec", "make_image_lists", "convert_folder_dataset", "AUG_PRESETS",
           "add_aug_args", "add_data_args", "apply_presets", "resolve_aug", "FreshIter",
           "PadCropIter", "count_records", "get_rec_iters", "iters_from_args", "strip_pad",
           "update_metric"]

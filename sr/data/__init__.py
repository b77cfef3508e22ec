"""The data path, in the order data flows: image files (``images``, ``sets``) -> the protocol's
degradation (``degradation``) or the real-photo one (``realistic``) -> aligned patches
(``patches``) -> HDF5 files and the datasets that read them (``h5``)."""

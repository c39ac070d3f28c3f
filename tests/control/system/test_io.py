"""load_model / save_model and the built-in models."""

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import torch

from difflinalg import InputError
from difflinalg.control import BUILTIN_MODELS, SparseSystem, builtin_model, h2_norm, is_stable, load_model, save_model

from _controlhelpers import SLICOT, random_system


def test_mat_sparse_uint8_missing_d(tmp_path):
    A = sp.csc_matrix(-2.0 * np.eye(4) + np.diag(np.ones(3), 1))
    B = np.ones((4, 1), dtype=np.uint8)
    C = sp.csc_matrix(np.array([[1, 0, 2, 0]], dtype=np.uint8))
    path = tmp_path / "m.mat"
    scipy.io.savemat(path, {"A": A, "B": B, "C": C})
    F = load_model(path)
    assert F.dtype == torch.float64 and F.time == "continuous"
    assert torch.equal(F.D, torch.zeros(1, 1, dtype=torch.float64))
    assert torch.equal(F.C, torch.tensor([[1.0, 0.0, 2.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("suffix", [".npz", ".mat"])
@pytest.mark.parametrize("discrete", [False, True])
def test_roundtrip(tmp_path, suffix, discrete):
    F = random_system(4, 2, 3, discrete=discrete, seed=31)
    path = tmp_path / f"model{suffix}"
    save_model(F, path)
    G = load_model(path)
    assert G.time == F.time
    for x, y in zip(F.matrices(), G.matrices()):
        assert torch.equal(x, y)


def test_complex_roundtrip(tmp_path):
    F = random_system(3, dtype=torch.complex128, seed=32)
    save_model(F, tmp_path / "c.npz")
    assert torch.equal(load_model(tmp_path / "c.npz").A, F.A)


def test_missing_matrices_and_bad_files(tmp_path):
    scipy.io.savemat(tmp_path / "noa.mat", {"B": np.ones((2, 1)), "C": np.ones((1, 2))})
    with pytest.raises(InputError, match=r"no matrix A in the file \(found \['B', 'C'\]\)"):
        load_model(tmp_path / "noa.mat")
    (tmp_path / "x.txt").write_text("A")
    with pytest.raises(InputError, match="unknown model file type '.txt'"):
        load_model(tmp_path / "x.txt")
    (tmp_path / "bad.mat").write_text("not a mat file")
    with pytest.raises(InputError, match="not a readable MATLAB file"):
        load_model(tmp_path / "bad.mat")
    scipy.io.savemat(tmp_path / "shape.mat", {"A": -np.eye(3), "B": np.ones((2, 1)), "C": np.ones((1, 3))})
    with pytest.raises(InputError, match="shape.mat: B: expected 3 rows"):
        load_model(tmp_path / "shape.mat")
    scipy.io.savemat(tmp_path / "e.mat", {"A": -np.eye(2), "B": np.ones((2, 1)), "C": np.ones((1, 2)),
                                          "E": np.array([[1.0, 1.0], [1.0, 1.0]])})
    with pytest.raises(InputError, match="e.mat: E: the mass matrix is numerically singular"):
        load_model(tmp_path / "e.mat")
    scipy.io.savemat(tmp_path / "e3.mat", {"A": -np.eye(2), "B": np.ones((2, 1)), "C": np.ones((1, 2)), "E": np.eye(3)})
    with pytest.raises(InputError, match=r"e3.mat: E: expected shape \(\.\.\., 2, 2\)"):
        load_model(tmp_path / "e3.mat")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.mat")


@pytest.mark.data
@pytest.mark.skipif(not (SLICOT / "ISS12A.mat").exists(), reason="SLICOT data not present")
def test_slicot_files_load():
    F = load_model(SLICOT / "ISS12A.mat", sparse=False)
    assert (F.order, F.n_outputs, F.n_inputs) == (1412, 3, 3)
    assert torch.equal(F.D, torch.zeros(3, 3, dtype=torch.float64))  # stored as a uint8 zero matrix
    S = load_model(SLICOT / "ISS12A.mat")  # a sparse A of 1412 > SPARSE_CROSSOVER states
    assert isinstance(S, SparseSystem) and S.order == 1412 and not np.any(S.D)
    G = load_model(SLICOT / "build.mat")  # C stored as uint8
    assert G.C.dtype == torch.float64 and G.order == 48


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_builtin_models(name):
    F = builtin_model(name)
    assert is_stable(F)
    small = builtin_model(f"{name}:8")
    assert small.order <= 20 and is_stable(small) and float(h2_norm(small)) > 0


def test_builtin_errors():
    with pytest.raises(InputError, match="unknown built-in model 'nope'"):
        builtin_model("nope")
    with pytest.raises(InputError, match="must be an integer"):
        builtin_model("msd:x")


def _good(**extra):
    return dict(A=-np.eye(2), B=np.ones((2, 1)), C=np.ones((1, 2)), **extra)


def test_damaged_npz_files_named(tmp_path):
    """Random bytes, an empty file, a truncated archive, a single .npy and pickled entries in a
    .npz each get an InputError saying what is wrong with the file (no zipfile/EOF/pickle errors)."""
    np.savez(tmp_path / "good.npz", **_good())
    data = (tmp_path / "good.npz").read_bytes()
    cases = {
        "random.npz": (np.random.default_rng(0).bytes(300), r"not a NumPy \.npz archive \(not a zip archive"),
        "empty.npz": (b"", r"the file is empty \(0 bytes\)"),
        "truncated.npz": (data[: len(data) // 2], r"the \.npz archive is damaged or truncated \(BadZipFile"),
    }
    for name, (raw, msg) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(InputError, match=f"{name}: {msg}"):
            load_model(tmp_path / name)
    np.save(tmp_path / "single.npy", -np.eye(2))
    (tmp_path / "single.npz").write_bytes((tmp_path / "single.npy").read_bytes())
    with pytest.raises(InputError, match=r"single NumPy array \(\.npy\)"):
        load_model(tmp_path / "single.npz")
    np.savez(tmp_path / "obj.npz", **_good(extra=np.array([{"a": 1}], dtype=object)))
    with pytest.raises(InputError, match="entry 'extra' holds pickled Python objects"):
        load_model(tmp_path / "obj.npz")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        load_model(tmp_path / "dir.npz")
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(InputError, match="empty.mat: not a readable MATLAB file"):
        load_model(tmp_path / "empty.mat")


@pytest.mark.parametrize("suffix", [".npz", ".mat"])
@pytest.mark.parametrize("ts, msg", [
    (np.zeros((0,)), r"sample time Ts must be one real number .* got float64 array of shape \(0,?"),
    ("abc", r"sample time Ts must be one real number .* got <U3 array"),
    (np.array([0.1, 0.2]), r"sample time Ts must be one real number .* shape \((1, )?2,?\)"),
    (np.nan, r"sample time Ts = nan is neither > 0 or -1"),
    (-2.0, r"sample time Ts = -2.0 is neither > 0 or -1"),
])
def test_bad_sample_time(tmp_path, suffix, ts, msg):
    path = tmp_path / f"ts{suffix}"
    if suffix == ".npz":
        np.savez(path, **_good(Ts=np.asarray(ts)))
    else:
        scipy.io.savemat(path, _good(Ts=ts))
    with pytest.raises(InputError, match=msg):
        load_model(path)
    assert load_model(path, time="discrete").discrete  # an explicit time domain overrides the file


@pytest.mark.parametrize("ts, discrete", [(0.0, False), (0.5, True), (-1.0, True)])
def test_sample_time_values(tmp_path, ts, discrete):
    scipy.io.savemat(tmp_path / "m.mat", _good(Ts=ts))
    assert load_model(tmp_path / "m.mat").discrete is discrete


def test_bad_time_entry_and_argument(tmp_path):
    np.savez(tmp_path / "t.npz", **_good(time=np.array("sometimes")))
    with pytest.raises(InputError, match="entry 'time' must be 'continuous' or 'discrete', got 'sometimes'"):
        load_model(tmp_path / "t.npz")
    np.savez(tmp_path / "t2.npz", **_good(time=np.array(1.0)))
    with pytest.raises(InputError, match="entry 'time' must be the string"):
        load_model(tmp_path / "t2.npz")
    np.savez(tmp_path / "ok.npz", **_good())
    with pytest.raises(InputError, match="time: expected None .* got 'cont'"):
        load_model(tmp_path / "ok.npz", time="cont")


# -- descriptor and sparse models --------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npz", ".mat"])
def test_sparse_descriptor_roundtrip(tmp_path, suffix):
    from difflinalg.control import SparseSystem
    from difflinalg.control.large import msd_descriptor

    F = msd_descriptor(40)
    path = tmp_path / f"msd{suffix}"
    save_model(F, path)
    G = load_model(path, sparse=True)
    assert isinstance(G, SparseSystem) and G.E is not None
    assert (G.A != F.A).nnz == 0 and (G.E != F.E).nnz == 0
    assert np.array_equal(G.B, F.B) and np.array_equal(G.C, F.C) and G.time == F.time
    H = load_model(path)  # 80 states, below the crossover: dense, E folded in
    assert not isinstance(H, SparseSystem)
    assert np.allclose(H.A.numpy(), F.to_dense().A.numpy(), rtol=1e-12, atol=1e-12)


def test_large_sparse_file_loads_sparse(tmp_path, monkeypatch):
    from difflinalg.control import SparseSystem
    from difflinalg.control.large import heat_2d
    from difflinalg.control.system import _route

    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 50)
    F = heat_2d(8)
    scipy.io.savemat(tmp_path / "h.mat", {"A": F.A, "B": F.B, "C": F.C, "E": sp.identity(64, format="csc")})
    G = load_model(tmp_path / "h.mat")
    assert isinstance(G, SparseSystem) and float(h2_norm(G)) == pytest.approx(float(h2_norm(F.to_dense())), rel=1e-8)
    dense = {"A": F.A.toarray(), "B": F.B, "C": F.C}
    scipy.io.savemat(tmp_path / "d.mat", dense)  # stored dense: stays dense whatever its order
    assert not isinstance(load_model(tmp_path / "d.mat"), SparseSystem)


def test_bad_sparse_file_entries(tmp_path):
    from difflinalg.control.large import heat_2d

    F = heat_2d(4)
    A = F.A.tocsc()
    np.savez(tmp_path / "bad.npz", A_csc_data=A.data, A_csc_indices=A.indices + 100, A_csc_indptr=A.indptr,
             A_csc_shape=np.array(A.shape), B=F.B, C=F.C)
    with pytest.raises(InputError, match="bad.npz: matrix A: its CSC arrays A_csc_\\* are inconsistent"):
        load_model(tmp_path / "bad.npz")
    A = A.copy()
    A.data[0] = np.nan
    scipy.io.savemat(tmp_path / "nan.mat", {"A": A, "B": F.B, "C": F.C})
    with pytest.raises(InputError, match="nan.mat: A: contains"):
        load_model(tmp_path / "nan.mat", sparse=True)

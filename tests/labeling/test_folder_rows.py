"""A folder's labels table lists that folder's frames only: a crafted row naming another folder (or
climbing out with `..`) must not make a save write that folder's table, another lab's where the path
leaves the project. Oracle: the other folder's files, byte for byte, and pandas reading the crafted file."""

from __future__ import annotations

import glob
import os

import pandas as pd
import pytest

from posecluster.data import synthetic
from posecluster.data.synthetic_multianimal import MultiAnimalScene
from posecluster.data.synthetic_multianimal import write_project as write_animals_project
from posecluster.errors import InputError
from posecluster.labeling.animal_folder_table import save_animal_folder_table
from posecluster.labeling.folder_table import save_folder_table, table_version


def _craft(table: str, image: str) -> None:
    """Rename the table's last row to `image` (in the table's own index style), as a hostile file would."""
    frame = pd.read_hdf(table)
    parts = image.split("/")
    index = list(frame.index)
    index[-1] = tuple(parts[:2] + ["/".join(parts[2:])]) if isinstance(frame.index, pd.MultiIndex) else image
    frame.index = pd.MultiIndex.from_tuples(index) if isinstance(frame.index, pd.MultiIndex) else pd.Index(index)
    frame.to_hdf(table, key="df_with_missing", mode="w")
    os.remove(table[: -len(".h5")] + ".csv")


@pytest.mark.parametrize("image", ["labeled-data/other/img0001.png", "labeled-data/../../otherlab/img.png"])
@pytest.mark.parametrize("kind", ["single", "animals"])
def test_a_save_refuses_a_table_whose_rows_name_another_folder_and_writes_nothing(kind, image, tmp_path):
    root = str(tmp_path / "project")
    if kind == "single":
        synthetic.write_project(root, labeled_frames=3, scene=synthetic.Scene(width=48, height=40, seed=1),
                                video_frames=4)
        save = save_folder_table
    else:
        write_animals_project(root, labeled_frames=3, scene=MultiAnimalScene(width=48, height=40, animals=2),
                              video_frames=4)
        save = save_animal_folder_table
    table = sorted(glob.glob(f"{root}/labeled-data/*/CollectedData_*.h5"))[0]
    folder = os.path.relpath(os.path.dirname(table), root)
    _craft(table, image)
    before = {path: open(path, "rb").read() for path in glob.glob(f"{tmp_path}/**/*", recursive=True)
              if os.path.isfile(path)}
    scorer = os.path.basename(table)[len("CollectedData_"):-len(".h5")]
    with pytest.raises(InputError, match=r"row 2: names .* not a frame of labeled-data/"):
        save(root, folder, {}, table_version(root, folder, scorer))
    after = {path: open(path, "rb").read() for path in glob.glob(f"{tmp_path}/**/*", recursive=True)
             if os.path.isfile(path)}
    assert after == before

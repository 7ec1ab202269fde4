from posecluster.data.split import Split, make_split


def test_split_is_seeded_by_shuffle_and_respects_the_fraction():
    images = [f"img{i:03d}.png" for i in range(116)]
    first, again, other = make_split(images, 0.95, 1), make_split(images, 0.95, 1), make_split(images, 0.95, 2)
    assert first == again and first.test_images != other.test_images
    assert len(first.train_images) == 110 and len(first.test_images) == 6
    assert set(first.train_images).isdisjoint(first.test_images)


def test_split_survives_saving(tmp_path):
    split = make_split(["a", "b", "c", "d"], 0.5, 3)
    split.save(str(tmp_path / "split.json"))
    assert Split.load(str(tmp_path / "split.json")) == split

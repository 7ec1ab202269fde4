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


def test_split_counts_are_deeplabcuts_int_of_n_times_rounded_fraction():
    # Expected counts from DeepLabCut's SplitTrials: train = int(n * round(fraction, 2)).
    cases = {(7, 0.95): 6, (8, 0.95): 7, (9, 0.95): 8, (10, 0.95): 9, (21, 0.95): 19, (116, 0.95): 110,
             (100, 0.29): 28, (40, 0.8): 32, (5, 0.5): 2, (3, 0.95): 2}
    for (n, fraction), n_train in cases.items():
        split = make_split([f"labeled-data/v/img{i:03d}.png" for i in range(n)], fraction, 1)
        assert (len(split.train_images), len(split.test_images)) == (n_train, n - n_train), (n, fraction)


def test_a_fraction_below_one_always_keeps_a_test_image():
    for n in range(2, 30):
        split = make_split([f"img{i:03d}.png" for i in range(n)], 0.99, 1)
        assert len(split.test_images) >= 1 and len(split.train_images) >= 1, n
    assert len(make_split(["a", "b"], 1.0, 1).test_images) == 0


def test_a_shuffle_picks_the_same_images_whatever_order_the_tables_were_read_in():
    images = [f"labeled-data/v{i % 3}/img{i:03d}.png" for i in range(30)]
    assert make_split(images, 0.8, 2) == make_split(list(reversed(images)), 0.8, 2)

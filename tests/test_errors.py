import pickle

from posecluster.errors import InputError


def test_input_errors_cross_process_boundaries_intact():
    error = InputError("s3://b/v.mp4", "not a readable video", frame=12)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) == "s3://b/v.mp4, frame 12: not a readable video"
    assert (again.source, again.detail, again.frame) == ("s3://b/v.mp4", "not a readable video", 12)

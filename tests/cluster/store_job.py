"""A facility's day on one object store, through the real CLI with its own local Ray: an archive job over
N videos, a rerun that must skip them all, one video replaced and the rerun that must compute it alone, and
extract-frames run twice (the second finds nothing new and exits 0).

Run in a process of its own, because Ray's workers take the store's endpoint, keys and CA from the
environment they start in:
  AWS_ENDPOINT_URL=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... [AWS_CA_BUNDLE=...] \
  python -m tests.cluster.store_job MODEL_DIR WORK_DIR [--videos N] [--frames F] [--bucket B]
Prints one JSON object with what each step did (and seconds), the last line of its output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid


def _client():
    import boto3
    from botocore.config import Config

    config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1", config=config,
                        verify=os.environ.get("AWS_CA_BUNDLE") or True)


def _job(root: str, extra: tuple[str, ...] = ()) -> dict:
    from posecluster.cli.main import main
    from posecluster.cluster.manifest import iter_records, read_summary

    started = time.monotonic()
    code = main(["infer", f"{root}/videos/", "--model", f"{root}/models/A", "--out", f"{root}/poses", "--workers", "2",
                 "--segment-frames", "12", "--batch-size", "4", "--quiet", *extra])
    summary = read_summary(f"{root}/poses")
    records = {r["uri"].rsplit("/", 1)[-1]: r for r in iter_records(f"{root}/poses", summary["job_id"])}
    return {"code": code, "seconds": round(time.monotonic() - started, 1),
            "statuses": {name: r["status"] for name, r in sorted(records.items())},
            "frames": {name: r.get("frames") for name, r in sorted(records.items())}}


def run(model_dir: str, work: str, videos: int, frames: int, bucket: str | None) -> dict:
    from posecluster import storage
    from posecluster.cli.main import main
    from posecluster.config import ProjectConfig
    from posecluster.data import synthetic
    from posecluster.data.formats import dlc
    from posecluster.model.artifact import load_model, save_model

    if bucket is None:
        bucket = f"jobs-{uuid.uuid4().hex[:10]}"
        _client().create_bucket(Bucket=bucket)
    root = f"s3://{bucket}"
    trained = load_model(model_dir)
    save_model(f"{root}/models/A", trained.config, trained.bodyparts, trained.state_dict)
    for k in range(videos):
        local = f"{work}/v{k:02d}.mp4"
        synthetic.render_video(local, synthetic.Scene(width=96, height=80, seed=100 + k), frames, gop=12)
        storage.atomic_upload(local, f"{root}/videos/v{k:02d}.mp4")
    # One video as a multipart upload (ETag `<md5>-1`), as large recordings arrive: its done record must
    # pin and skip it like any other.
    from boto3.s3.transfer import TransferConfig

    _client().upload_file(f"{work}/v01.mp4", bucket, "videos/v01.mp4", Config=TransferConfig(multipart_threshold=1))
    report_etag = storage.identity(f"{root}/videos/v01.mp4").version
    report = {"endpoint": os.environ["AWS_ENDPOINT_URL"], "videos": videos, "frames": frames,
              "multipart_etag": report_etag}
    report["first"] = _job(root)
    report["rerun"] = _job(root)
    replaced = f"{work}/replacement.mp4"  # another recording under the same name, of another length
    synthetic.render_video(replaced, synthetic.Scene(width=96, height=80, seed=999), frames + 12, gop=12)
    storage.atomic_upload(replaced, f"{root}/videos/v00.mp4")
    report["after_replacing_v00"] = _job(root)

    project = f"{root}/projects/lab"
    dlc.write_project_config(f"{project}/config.yaml", ProjectConfig(task="lab", scorer="Ann", date="Dec05",
                                                                     bodyparts=list(trained.bodyparts)))
    extract = ["extract-frames", f"{root}/videos/v01.mp4", "--project", project, "--n", "4", "--method", "uniform"]
    report["extract_first"] = main(extract)
    report["extract_second"] = main(extract)
    table = dlc.read_table(f"{project}/labeled-data/v01/CollectedData_Ann.h5")
    report["extract_rows"] = len(table)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("work")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--bucket")
    args = parser.parse_args()
    started = time.monotonic()
    report = run(args.model_dir, args.work, args.videos, args.frames, args.bucket)
    report["seconds"] = round(time.monotonic() - started, 1)
    sys.stdout.flush()
    print(json.dumps(report))


if __name__ == "__main__":
    main()

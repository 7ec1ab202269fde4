"""Multi-animal decoding cost beside the network's, per frame on CPU (issue 31: peaks + assembly + tracking
<= 20% of the network's time per frame at 3 animals).

Network: the multi-animal model (ResNet-50, 8 animal parts, the complete PAF graph of 28 edges, one unique
part) on a 640x480 frame at global_scale 0.8, batch 1, fp32, BatchNorm folded, as inference runs it;
weights random (speed does not depend on them). Decoding: peaks + assembly (decode_animals) on the maps a
network would output for 3 animals at random places, rendered from their keypoints; "noisy" adds N(0, 1)
to every logit and field, which brings spurious peaks, the worst case for the assembly. Rounds interleave
network and decoding so that a load change on a shared machine hits both alike; medians are reported.
Tracking is not part of this module (see the tracking work); its cost adds to the decode figure.

  cd benchmarks && python multianimal_decode_cost.py --rounds 5 --frames 20 --threads 1
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from _common import save
from posecluster.config import BackboneConfig, ModelConfig, TargetConfig
from posecluster.model.multianimal_decode import decode_animals
from posecluster.model.multianimal_model import MultiAnimalPoseModel, MultiAnimalSpec
from posecluster.model.paf_graph import complete_graph
from posecluster.model.paf_targets import make_multianimal_targets

PARTS = tuple(f"part{i}" for i in range(8))


def _seeded(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(1 << 30)))


def rendered_outputs(rng: np.random.Generator, grid: tuple[int, int], spec: MultiAnimalSpec, noise: float):
    height, width = grid[0] * 8, grid[1] * 8
    animals = []
    for _ in range(3):
        start = rng.uniform([40, 40], [width - 40, height - 40])
        step = rng.normal(size=2)
        animals.append(start + np.arange(len(PARTS))[:, None] * 12 * step / np.linalg.norm(step))
    keypoints = torch.tensor(np.stack(animals)[None], dtype=torch.float32)
    unique = torch.tensor([[[20.0, 20.0]]])
    t = make_multianimal_targets(keypoints, unique, torch.ones(1), grid, 8.0, TargetConfig(), spec.edges)
    p = t.parts.scoremap.clamp(1e-3, 1 - 1e-3)
    out = {"scoremap": torch.log(p / (1 - p)), "locref": t.parts.locref, "paf": t.paf}
    if noise:
        out = {name: value + noise * torch.randn(value.shape, generator=_seeded(rng)) for name, value in out.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=20, help="frames decoded per round (and network passes: 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 keeps "
                        "figures steady on a machine shared with other jobs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = MultiAnimalSpec(PARTS, ("landmark",), ("m1", "m2", "m3"), tuple(complete_graph(len(PARTS))))
    config = ModelConfig(backbone=BackboneConfig(name="resnet50", weights="none"))
    model = MultiAnimalPoseModel.for_inference(config, spec, MultiAnimalPoseModel(config, spec).state_dict())
    frame = torch.rand(1, 3, 384, 512)  # 640x480 at global_scale 0.8
    with torch.no_grad():
        grid = tuple(model(frame)["scoremap"].shape[-2:])
    rng = np.random.default_rng(0)
    clean = [rendered_outputs(rng, grid, spec, 0.0) for _ in range(args.frames)]
    noisy = [rendered_outputs(rng, grid, spec, 1.0) for _ in range(args.frames)]
    found = {"clean": [len(decode_animals(o, spec, 8.0, 7.2801)[0].poses) for o in clean],
             "noisy": [len(decode_animals(o, spec, 8.0, 7.2801)[0].poses) for o in noisy]}
    # Wall-clock and process CPU seconds per frame; CPU time is what other jobs on the machine cannot inflate.
    network, decode = [], {"clean": [], "noisy": []}
    network_cpu, decode_cpu = [], {"clean": [], "noisy": []}
    for _ in range(args.rounds):
        with torch.no_grad():
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(3):
                model(frame)
            network.append((time.perf_counter() - start) / 3)
            network_cpu.append((time.process_time() - cpu) / 3)
        for name, outputs in (("clean", clean), ("noisy", noisy)):
            start, cpu = time.perf_counter(), time.process_time()
            for out in outputs:
                decode_animals(out, spec, 8.0, 7.2801)
            decode[name].append((time.perf_counter() - start) / len(outputs))
            decode_cpu[name].append((time.process_time() - cpu) / len(outputs))
    network_s = float(np.median(network))
    network_cpu_s = float(np.median(network_cpu))
    result = {
        "setup": {"backbone": "resnet50", "input_hw": [384, 512], "output_grid": list(grid), "animals": 3,
                  "animal_parts": len(PARTS), "unique_parts": 1, "graph_edges": len(spec.graph),
                  "rounds": args.rounds, "frames_per_round": args.frames},
        "network_ms_per_frame": 1000 * network_s,
        "decode_assembly_ms_per_frame": {name: 1000 * float(np.median(v)) for name, v in decode.items()},
        "decode_share_of_network": {name: float(np.median(v)) / network_s for name, v in decode.items()},
        "network_cpu_ms_per_frame": 1000 * network_cpu_s,
        "decode_assembly_cpu_ms_per_frame": {name: 1000 * float(np.median(v)) for name, v in decode_cpu.items()},
        "decode_share_of_network_cpu": {name: float(np.median(v)) / network_cpu_s for name, v in decode_cpu.items()},
        "load_average_at_end": list(os.getloadavg()),
        "animals_found": {name: {"min": min(v), "max": max(v)} for name, v in found.items()},
        "target": "decode + assembly + tracking <= 0.20 of the network's time per frame",
    }
    for name in decode:
        print(f"{name}: decode+assembly {result['decode_assembly_ms_per_frame'][name]:.2f} ms/frame = "
              f"{100 * result['decode_share_of_network'][name]:.2f}% of the network's "
              f"{result['network_ms_per_frame']:.0f} ms; CPU time "
              f"{100 * result['decode_share_of_network_cpu'][name]:.2f}%; animals found "
              f"{found[name]['min'] if isinstance(found[name], dict) else min(found[name])}-{max(found[name])}")
    save("multianimal_decode_cost", result)


if __name__ == "__main__":
    main()

"""Labeling a multi-animal (maDLC) project in the browser: the folder's frames as the page sees them and
what a save may contain.

On the wire a frame is {"<individual>": {"<body part>": [x, y] or null}}, unique body parts under DLC's
`single`; a name the project does not have is refused with an error naming the frame (a typo or an old
page must never add columns to the lab's CollectedData). Inside the server a frame is one flat list of
points in labeling.animal_folder_table.animal_slots order, so the per-frame merge (labels.merge_frames)
compares it as it compares a single-animal frame."""

from __future__ import annotations

from posecluster import api
from posecluster.config import UNIQUE_INDIVIDUAL, ProjectConfig
from posecluster.errors import InputError
from posecluster.labeling.animal_folder_table import AnimalFolderTable, animal_slots
from posecluster.serve.labels import checked_point


def animal_groups(project: ProjectConfig) -> dict[str, list[str]]:
    """{individual: its body parts} in config order, then `single` with the unique body parts (if any)."""
    groups = {animal: list(project.bodyparts) for animal in project.individuals}
    if project.unique_bodyparts:
        groups[UNIQUE_INDIVIDUAL] = list(project.unique_bodyparts)
    return groups


class AnimalFrames:
    """How a multi-animal project's folders are read, shown, checked and saved (labels.SingleAnimalFrames
    is the single-animal counterpart)."""

    def __init__(self, project: ProjectConfig):
        self.project = project
        self.groups = animal_groups(project)
        self.slots = animal_slots(project)

    def read(self, project_uri: str, folder: str) -> AnimalFolderTable:
        return api.animal_folder_table(project_uri, folder)

    def counts(self, table: AnimalFolderTable) -> tuple[int, int]:
        return table.labeled_frames(), len(table.proposed)

    def page(self, table: AnimalFolderTable, shown: list[str], served: dict) -> dict:
        labels = table.keypoints()
        parts = set(table.project.bodyparts)
        # Drawn within each animal: pairs of its body parts (a pair naming an unknown part is left out).
        skeleton = [list(pair) for pair in table.project.skeleton if len(pair) == 2 and set(pair) <= parts]
        return {
            "multianimal": True, "individuals": list(table.project.individuals),
            "bodyparts": list(table.project.bodyparts), "unique_bodyparts": list(table.project.unique_bodyparts),
            "identity": bool(table.project.identity), "skeleton": skeleton,
            "labels": {image: self.wire(labels[image]) for image in shown},
            # Refine: the model's points of the proposed frames ([x, y, likelihood] each), per individual.
            "machine": {image: self.wire(points) for image, points in table.machine.items() if image in served},
            "proposed": [image for image in table.proposed if image in served],
        }

    def checked(self, image: str, frame, size: tuple[int, int] | None) -> list:
        """The page's frame as a flat list, or InputError naming the frame, the individual and the part."""
        if not isinstance(frame, dict):
            raise InputError(image, 'expected {"<individual>": {"<body part>": [x, y] or null}}, got '
                                    f"{type(frame).__name__}")
        for animal, points in frame.items():
            if animal not in self.groups:
                raise InputError(image, f"individual {animal!r} is not one of the project's "
                                        f"({', '.join(self.groups)})")
            if not isinstance(points, dict):
                raise InputError(image, f"individual {animal!r}: expected {{\"<body part>\": [x, y] or null}}")
            unknown = [part for part in points if part not in self.groups[animal]]
            if unknown:
                kind = "unique body parts" if animal == UNIQUE_INDIVIDUAL else "body parts"
                raise InputError(image, f"individual {animal!r}: {unknown[0]!r} is not one of the project's {kind} "
                                        f"({', '.join(self.groups[animal])})")
        return [checked_point(image, f"individual {animal!r}, body part {part!r}", frame.get(animal, {}).get(part), size)
                for animal, part in self.slots]

    def wire(self, points):
        """A flat list (or None) as the page's {individual: {body part: point}}."""
        if points is None:
            return None
        frame: dict[str, dict] = {animal: {} for animal in self.groups}
        for (animal, part), point in zip(self.slots, points):
            frame[animal][part] = point
        return frame

    def save(self, project_uri: str, folder: str, accepted: dict, version: str) -> str:
        return api.save_animal_labels(project_uri, folder, accepted, version)

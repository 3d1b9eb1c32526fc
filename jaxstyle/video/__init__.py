"""Video: the lanes schedule (:mod:`.lanes`), refinement passes (:mod:`.refine`), optical flow
(:mod:`.flow`) and the temporal inputs made from it (:mod:`.temporal`), the frames and styles a job
reads (:mod:`.source`), how lanes join (:mod:`.joins`), its work directory (:mod:`.workdir`), the output (:mod:`.assemble`), and
the job that runs them in order (:mod:`.job`)."""

from .job import Processes, VideoJob, VideoOptions, frames_at_once, stylize_video
from .joins import join_weight
from .lanes import MIN_LANE_FRAMES, Lane, plan_lanes, snap_to_cuts

__all__ = ["Processes", "VideoJob", "VideoOptions", "frames_at_once", "stylize_video", "MIN_LANE_FRAMES", "Lane", "join_weight",
           "plan_lanes", "snap_to_cuts"]

"""From video files to aligned face crops in the Aff-Wild2 layout (torch-free).

decode (streaming frames), detect (the detector interface; OpenCV detector files), align
(five-point similarity to 112x112), track (subjects over time; optical flow between detections),
faces (the per-video pipeline), meta (per-frame face records), sheet (contact sheets), store_faces
(face records as arrays on the store's frame axis). The MTCNN detector is ``encoders.mtcnn``.
"""

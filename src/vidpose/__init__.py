"""vidpose: video-centric, semi-supervised animal pose estimation."""

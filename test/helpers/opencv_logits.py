"""Logits of ONNX models for the first N MNIST test images, computed by OpenCV's DNN module, a runtime that shares no
code with onnxruntime (Debian's python3-opencv). Usage: opencv_logits.py IMAGES_IDX N MODEL... ; writes MODEL.opencv.bin
(float32 logits [N,10]) beside each model and prints the OpenCV version."""
import sys

import cv2
import numpy as np

images_file, n, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
images = np.fromfile(images_file, dtype=np.uint8, offset=16, count=n * 784).reshape(n, 1, 28, 28)
for path in models:
    net = cv2.dnn.readNetFromONNX(path)
    net.setInput(images)
    np.asarray(net.forward("logits"), dtype=np.float32).tofile(path + ".opencv.bin")
print(cv2.__version__)

# a2v images. Two targets:
#   docker build --target triton -t a2v-triton .   # NVIDIA Triton 2.51 + the a2v models
#   docker build --target server -t a2v-server .   # the gRPC server (default target)
# Run: docker run --gpus all --shm-size 1g -p 8001:8001 a2v-triton
#      docker run -p 50051:50051 -e A2V_TRITON_URL=<triton-host>:8001 \
#        -e A2V_TLS_CERT_FILE=/certs/tls.crt -e A2V_TLS_KEY_FILE=/certs/tls.key -v ./certs:/certs:ro \
#        a2v-server            # or -e A2V_ALLOW_INSECURE=true behind a TLS proxy / mesh
# docker-compose.yml runs both plus an OpenTelemetry collector; deploy/k8s/ for Kubernetes.

# --- Triton with the models' packages ---------------------------------------------------------
FROM nvcr.io/nvidia/tritonserver:24.10-py3 AS triton
COPY model_repository/requirements.txt model_repository/requirements-mediapipe.txt /opt/a2v/
# numpy 1.x: the python backend stub is built against it (see README, "Two environments");
# mediapipe without its declared dependencies (requirements.txt says why)
RUN pip install --no-cache-dir -r /opt/a2v/requirements.txt \
 && pip install --no-cache-dir --no-deps -r /opt/a2v/requirements-mediapipe.txt
COPY model_repository /models
# One thread per model process for OpenCV and BLAS: Triton's instances are the parallelism
# (server/a2v_server/inference/triton_process.py MODEL_THREAD_ENV says why)
ENV OPENCV_FOR_THREADS_NUM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
USER triton-server
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD curl -fs localhost:8000/v2/health/ready || exit 1
# Every model of the repository: its folders are exactly the catalog's Triton models
# (server/a2v_server/catalog.py TRITON_MODELS; tests/deploy/test_deploy_manifests.py checks).
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=none"]

# --- server: build a wheel, then install it into a slim runtime ------------------------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client client
COPY server server
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim AS server
RUN pip install --no-cache-dir grpcio-health-checking==1.81.1 \
 && useradd --system --uid 10001 a2v
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && python -m a2v_server.media.sdr_luts
# (the HDR-to-SDR LUTs, made once in the image: media/sdr_luts.py)
USER a2v
# In a container the server must listen on all interfaces, so it refuses to start without TLS
# (A2V_TLS_CERT_FILE/A2V_TLS_KEY_FILE) unless A2V_ALLOW_INSECURE=true says a proxy or mesh
# encrypts the traffic. With TLS on, the health check below needs A2V_TLS_CA and a certificate
# that also names 127.0.0.1 (mutual TLS: A2V_TLS_CERT/A2V_TLS_KEY too), or override HEALTHCHECK.
ENV A2V_LISTEN=0.0.0.0:50051 A2V_TRITON_URL=triton:8001
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s \
  CMD ["a2v", "--server", "127.0.0.1:50051", "health"]
CMD ["a2v-server"]

/*
 * libcuda_stub.c: a stand-in for the NVIDIA driver library (libcuda.so.1) on a machine without a GPU.
 *
 * NIXL 0.9.0's plugins (libplugin_UCX.so, libplugin_LIBFABRIC.so) are linked against libcuda.so.1, so on a GPU-less
 * host even the UCX plugin fails to load ("libcuda.so.1: cannot open shared object file"). With this library on
 * LD_LIBRARY_PATH they load and run in their "no accelerator" mode: every entry point answers 100,
 * CUDA_ERROR_NO_DEVICE. The symbol list is the one the plugins were seen to need (LOCAL-LAB.md).
 *
 * `workshop lab setup` compiles it into .lab/lib/libcuda.so.1 and `lab_env()` puts that directory on
 * LD_LIBRARY_PATH only when no real driver library exists. Never install it system-wide.
 *
 * Build: gcc -shared -fPIC -O2 -Wl,-soname,libcuda.so.1 -o libcuda.so.1 libcuda_stub.c
 */

#define CUDA_ERROR_NO_DEVICE 100

/* The arguments are never read, so a function declared without parameters serves every real signature: the
 * caller's arguments are ignored and the result comes back in the return register (x86-64 and aarch64 C ABIs). */
#define STUB(name) \
    int name(void) { return CUDA_ERROR_NO_DEVICE; }

STUB(cuInit)
STUB(cuDriverGetVersion)
STUB(cuDeviceGetCount)
STUB(cuDeviceGet)
STUB(cuDeviceGetPCIBusId)
STUB(cuCtxGetCurrent)
STUB(cuCtxSetCurrent)
STUB(cuCtxPushCurrent_v2)
STUB(cuCtxPopCurrent_v2)
STUB(cuDevicePrimaryCtxRetain)
STUB(cuDevicePrimaryCtxRelease_v2)
STUB(cuPointerGetAttributes)

/* CUresult cuGetErrorString(CUresult error, const char **pStr): also fills *pStr, so a caller that prints the
 * string without checking the result reads a message instead of an uninitialised pointer. */
int cuGetErrorString(int error, const char **pStr)
{
    (void)error;
    if (pStr)
        *pStr = "CUDA_ERROR_NO_DEVICE: libcuda stub of the workshop lab (no NVIDIA driver on this machine)";
    return CUDA_ERROR_NO_DEVICE;
}

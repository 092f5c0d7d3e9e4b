"""FCN8 on a VGG16 trunk (Long et al., "Fully Convolutional Networks for Semantic Segmentation").

Built here without torchvision; the VGG16 layers keep torchvision's indices so an
ImageNet ``vgg16`` state dict can be loaded from a local file
(:func:`load_vgg16_imagenet_weights`). Nothing is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from covidal.errors import CovidalError
from covidal.models.slices.network import SegmentationNet, check_image_batch

# Five 2x max-poolings: each side must halve evenly five times.
FCN8_SIZE_MULTIPLE = 32
# torchvision's vgg16 "D" configuration: conv widths, "M" = 2x2 max-pool.
VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
# Index of the module just after pool3 / pool4 in ``vgg`` (pool3 = vgg[16], pool4 = vgg[23]).
AFTER_POOL3 = 17
AFTER_POOL4 = 24
# torchvision vgg16's fc6 is a Linear over a flattened [512, 7, 7] pool5 window.
VGG16_FC_CHANNELS = 4096
VGG16_FC6_KERNEL = 7
VGG16_POOL5_CHANNELS = 512


def build_vgg16_features() -> nn.Sequential:
    """VGG16's convolutional part with torchvision's ``vgg16().features`` indices.

    3x3 convs (padding 1) each followed by ``ReLU(inplace=True)``, and
    ``MaxPool2d(2, 2)`` at indices 4, 9, 16, 23, 30. Input ``[B, 3, H, W]``,
    output ``[B, 512, H/32, W/32]``.
    """
    layers: list[nn.Module] = []
    channels = 3
    for width in VGG16_LAYOUT:
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(width)
    return nn.Sequential(*layers)


class FCN8VGG16(SegmentationNet):
    """FCN8: VGG16 -> fc6/fc7 as convolutions -> score maps fused from pool5, pool4, pool3.

    * Input is one channel ``[B, 1, H, W]`` with H, W divisible by 32; it is
      replicated to 3 channels inside so ImageNet RGB weights fit. No ImageNet
      mean/std normalisation is applied: the images are used as given.
    * fc6 is ``Conv2d(512, fc_channels, 7, padding=3)`` (FCN's padding-100-and-crop
      trick is replaced by "same" padding), fc7 is 1x1; each is followed by ReLU
      and the trunk's own ``Dropout2d(0.5)``, as in FCN.
    * Instead of class scores, the score layers produce ``feature_channels`` maps:
      ``score_fr`` (from fc7), ``score_pool4``, ``score_pool3`` (all 1x1). They are
      fused as in FCN8 (x2 + pool4 score, x2 + pool3 score, x8), but upsampling is
      fixed bilinear interpolation to the exact skip size instead of learned
      deconvolutions (FCN initialises those to bilinear; fixing them removes the
      cropping arithmetic and a few parameters). A ReLU on the full-resolution
      sum gives the features ``[B, feature_channels, H, W]`` fed to the shared head.
    """

    def __init__(
        self,
        feature_channels: int = 64,
        dropout: float = 0.5,
        fc_channels: int = VGG16_FC_CHANNELS,
        num_classes: int = 2,
    ) -> None:
        """Build the network with He-initialised convolutions (as torchvision's VGG).

        Args:
            feature_channels: F, width of the fused score maps fed to the head.
            dropout: head channel-dropout probability, ``0 <= p < 1``.
            fc_channels: width of fc6/fc7 (4096 in VGG16; smaller only for tests,
                and then ImageNet fc weights cannot be loaded).
            num_classes: output classes.

        Raises:
            ValueError: if ``fc_channels < 1``, or as :class:`SegmentationNet`.
        """
        super().__init__(feature_channels=feature_channels, num_classes=num_classes, dropout=dropout)
        if fc_channels < 1:
            raise ValueError(f"fc_channels must be >= 1, got {fc_channels}")
        self.fc_channels = fc_channels
        self.vgg = build_vgg16_features()
        self.fc6 = nn.Conv2d(VGG16_POOL5_CHANNELS, fc_channels, VGG16_FC6_KERNEL, padding=VGG16_FC6_KERNEL // 2)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, kernel_size=1)
        self.fc_relu = nn.ReLU(inplace=True)
        self.fc_dropout = nn.Dropout2d(p=0.5)
        self.score_fr = nn.Conv2d(fc_channels, feature_channels, kernel_size=1)
        self.score_pool4 = nn.Conv2d(512, feature_channels, kernel_size=1)
        self.score_pool3 = nn.Conv2d(256, feature_channels, kernel_size=1)
        self._init_trunk_weights()

    def _init_trunk_weights(self) -> None:
        # PyTorch's default conv init shrinks activations layer by layer; a plain
        # 15-conv ReLU stack trained from scratch needs He init (torchvision's choice).
        trunk_convs = [m for m in self.modules() if isinstance(m, nn.Conv2d) and m is not self.classifier]
        for conv in trunk_convs:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def features(self, images: Tensor) -> Tensor:
        """Fused full-resolution features ``[B, F, H, W]`` for images ``[B, 1, H, W]``.

        Raises:
            ValueError: if the layout is wrong or H, W are not multiples of 32.
        """
        check_image_batch(images, 1, FCN8_SIZE_MULTIPLE, "FCN8VGG16")
        rgb = images.expand(-1, 3, -1, -1)
        pool3 = self.vgg[:AFTER_POOL3](rgb)
        pool4 = self.vgg[AFTER_POOL3:AFTER_POOL4](pool3)
        pool5 = self.vgg[AFTER_POOL4:](pool4)
        fc6 = self.fc_dropout(self.fc_relu(self.fc6(pool5)))
        fc7 = self.fc_dropout(self.fc_relu(self.fc7(fc6)))
        fused = _upsample_to(self.score_fr(fc7), pool4) + self.score_pool4(pool4)
        fused = _upsample_to(fused, pool3) + self.score_pool3(pool3)
        return F.relu(_upsample_to(fused, images))


def _upsample_to(maps: Tensor, reference: Tensor) -> Tensor:
    """Bilinearly resize ``maps`` ``[B, C, h, w]`` to the spatial size of ``reference`` ``[B, *, H, W]``."""
    return F.interpolate(maps, size=reference.shape[-2:], mode="bilinear", align_corners=False)


def linear_to_conv_weight(weight: Tensor, in_channels: int, kernel: int) -> Tensor:
    """Reshape a fully connected weight into the equivalent convolution weight.

    A Linear over a flattened ``[in_channels, kernel, kernel]`` window (PyTorch's
    C, H, W flattening order) is a ``kernel x kernel`` convolution.

    Args:
        weight: ``[out, in_channels * kernel * kernel]``.
        in_channels: channels of the flattened window.
        kernel: its side length.

    Returns:
        ``[out, in_channels, kernel, kernel]``.

    Raises:
        ValueError: if ``weight`` is not 2-D with ``in_channels * kernel**2`` columns.
    """
    expected = in_channels * kernel * kernel
    if weight.ndim != 2 or weight.shape[1] != expected:
        raise ValueError(
            f"linear weight must be [out, {expected}] for a {in_channels}x{kernel}x{kernel} window, "
            f"got {tuple(weight.shape)}"
        )
    return weight.reshape(weight.shape[0], in_channels, kernel, kernel)


def load_vgg16_imagenet_weights(model: FCN8VGG16, path: Path) -> None:
    """Load a local torchvision-format VGG16 state dict into ``model``'s trunk.

    ``features.N.*`` go to ``model.vgg.N.*``. When ``model.fc_channels == 4096``
    and the file has them, ``classifier.0`` (fc6, a 25088->4096 Linear) is reshaped
    into the 7x7 ``fc6`` convolution and ``classifier.3`` (fc7) into the 1x1
    ``fc7``. ImageNet's class layer (``classifier.6``) is not used.

    Args:
        model: the network to update in place.
        path: a file saved with ``torch.save(vgg16().state_dict(), path)``,
            e.g. torchvision's ``vgg16-397923af.pth``.

    Raises:
        CovidalError: if the file is missing or unreadable, has none of the VGG16
            ``features.*`` keys, lacks some of them, or has tensors of the wrong shape.
    """
    path = Path(path)
    state = _read_state_dict(path)
    model_state = model.state_dict()
    mapped = {
        "vgg." + key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")
    }
    expected_vgg_keys = [key for key in model_state if key.startswith("vgg.")]
    missing = [key for key in expected_vgg_keys if key not in mapped]
    if len(missing) == len(expected_vgg_keys):
        raise CovidalError(
            f"{path} has none of the VGG16 'features.N.weight' keys; "
            "pass a torchvision vgg16 ImageNet state dict (e.g. vgg16-397923af.pth)"
        )
    if missing:
        raise CovidalError(
            f"{path} lacks {len(missing)} VGG16 keys (e.g. {missing[0].replace('vgg.', 'features.', 1)}); "
            "pass a complete torchvision vgg16 state dict"
        )
    mapped = {key: mapped[key] for key in expected_vgg_keys}
    if model.fc_channels == VGG16_FC_CHANNELS:
        mapped.update(_fc_weights_as_convs(path, state))
    _check_shapes(path, mapped, model_state)
    model.load_state_dict(mapped, strict=False)


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    """``torch.load`` a state dict safely, turning every failure into a CovidalError."""
    if not path.is_file():
        raise CovidalError(
            f"VGG16 weights file not found: {path}; give the path of a local torchvision vgg16 state dict"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt/unsafe files
        raise CovidalError(f"cannot read VGG16 weights from {path}: {error}") from error
    if not isinstance(state, Mapping):
        raise CovidalError(
            f"{path} does not hold a state dict (got {type(state).__name__}); "
            "save one with torch.save(model.state_dict(), path)"
        )
    return state


def _fc_weights_as_convs(path: Path, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """fc6/fc7 Linear weights from a torchvision state dict as conv weights (those present)."""
    layers = {
        "fc6": ("classifier.0", VGG16_POOL5_CHANNELS, VGG16_FC6_KERNEL),
        "fc7": ("classifier.3", VGG16_FC_CHANNELS, 1),
    }
    converted: dict[str, Tensor] = {}
    for conv_name, (linear_name, in_channels, kernel) in layers.items():
        weight, bias = state.get(f"{linear_name}.weight"), state.get(f"{linear_name}.bias")
        if weight is None or bias is None:
            continue
        try:
            converted[f"{conv_name}.weight"] = linear_to_conv_weight(weight, in_channels, kernel)
        except ValueError as error:
            raise CovidalError(f"{path}: {linear_name}.weight does not fit VGG16's {conv_name}: {error}") from error
        converted[f"{conv_name}.bias"] = bias
    return converted


def _check_shapes(path: Path, loaded: Mapping[str, Tensor], model_state: Mapping[str, Tensor]) -> None:
    """Raise CovidalError for the first tensor whose shape differs from the model's."""
    for key, tensor in loaded.items():
        if tuple(tensor.shape) != tuple(model_state[key].shape):
            raise CovidalError(
                f"{path}: tensor for {key} has shape {tuple(tensor.shape)}, expected {tuple(model_state[key].shape)}; "
                "is this a VGG16 (not VGG11/13/19 or a batch-norm variant) state dict?"
            )

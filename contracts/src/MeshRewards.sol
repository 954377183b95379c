// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {BitMaps} from "@openzeppelin/contracts/utils/structs/BitMaps.sol";
import {MeshController} from "./MeshController.sol";
import {MeshLicense} from "./MeshLicense.sol";
import {MeshToken} from "./MeshToken.sol";

/// @title MeshOps availability rewards
/// @notice Pays the owner of a linked licence for the epochs its node was available, as
/// agreed and signed by k oracles: `rewardPerEpoch * availability / 255` per epoch. An epoch
/// is paid at most once per licence, and only ended epochs since the licence was linked are
/// paid. A node is linked to one licence at a time and a new link starts in the current
/// epoch, so relinking a node to another licence cannot collect an epoch twice either.
contract MeshRewards {
    using BitMaps for BitMaps.BitMap;

    uint256 public constant MAX_AVAILABILITY = 255;

    MeshToken public immutable token;
    MeshLicense public immutable licenses;
    MeshController public immutable controller;
    uint256 public immutable genesis;
    uint256 public immutable epochLength;
    uint256 public immutable rewardPerEpoch;

    mapping(uint256 licenseId => BitMaps.BitMap) private _claimed;

    event RewardsClaimed(
        uint256 indexed licenseId,
        address indexed node,
        address indexed owner,
        uint256[] epochs,
        uint256 amount
    );

    error InvalidEpochLength();
    error GenesisInFuture(uint256 genesis, uint256 timestamp);
    error NotLicenseOwner(uint256 licenseId, address caller);
    error LicenseNotLinked(uint256 licenseId);
    error NoEpochs();
    error LengthMismatch(uint256 epochs, uint256 availabilities);
    error AvailabilityOutOfRange(uint256 epoch, uint256 availability);
    error EpochNotEnded(uint256 epoch, uint256 currentEpoch);
    error EpochBeforeLink(uint256 licenseId, uint256 epoch, uint256 linkEpoch);
    error EpochAlreadyClaimed(uint256 licenseId, uint256 epoch);

    constructor(
        MeshToken token_,
        MeshLicense licenses_,
        MeshController controller_,
        uint256 genesis_,
        uint256 epochLength_,
        uint256 rewardPerEpoch_
    ) {
        if (epochLength_ == 0) revert InvalidEpochLength();
        if (genesis_ > block.timestamp) revert GenesisInFuture(genesis_, block.timestamp);
        token = token_;
        licenses = licenses_;
        controller = controller_;
        genesis = genesis_;
        epochLength = epochLength_;
        rewardPerEpoch = rewardPerEpoch_;
    }

    /// @notice The epoch `timestamp` falls in (epoch 0 starts at `genesis`).
    function epochAt(uint256 timestamp) public view returns (uint256) {
        return timestamp < genesis ? 0 : (timestamp - genesis) / epochLength;
    }

    function currentEpoch() public view returns (uint256) {
        return epochAt(block.timestamp);
    }

    /// @notice The digest each oracle signs (EIP-191) for a claim; bound to this chain and
    /// contract so a signature cannot be replayed on another deployment.
    function claimDigest(address node, uint256[] calldata epochs, uint256[] calldata availabilities)
        public
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encodePacked(block.chainid, address(this), node, epochs, availabilities)
        );
    }

    function isClaimed(uint256 licenseId, uint256 epoch) external view returns (bool) {
        return _claimed[licenseId].get(epoch);
    }

    /// @notice Claim the rewards of `epochs` for the caller's linked licence.
    /// @return amount tokens minted to the caller.
    function claim(
        uint256 licenseId,
        uint256[] calldata epochs,
        uint256[] calldata availabilities,
        bytes[] calldata signatures
    ) external returns (uint256 amount) {
        address node = _claimableNode(licenseId);
        if (epochs.length == 0) revert NoEpochs();
        if (epochs.length != availabilities.length) {
            revert LengthMismatch(epochs.length, availabilities.length);
        }
        controller.verify(claimDigest(node, epochs, availabilities), signatures);
        uint256 total = _markClaimed(licenseId, epochs, availabilities);
        amount = (rewardPerEpoch * total) / MAX_AVAILABILITY;
        if (amount > 0) token.mint(msg.sender, amount);
        emit RewardsClaimed(licenseId, node, msg.sender, epochs, amount);
    }

    /// @dev The node linked to the caller's licence; reverts for a foreign or unlinked one.
    function _claimableNode(uint256 licenseId) private view returns (address node) {
        if (licenses.ownerOf(licenseId) != msg.sender) {
            revert NotLicenseOwner(licenseId, msg.sender);
        }
        node = licenses.nodeOf(licenseId);
        if (node == address(0)) revert LicenseNotLinked(licenseId);
    }

    /// @dev Check and mark every epoch; returns the sum of availabilities.
    function _markClaimed(
        uint256 licenseId,
        uint256[] calldata epochs,
        uint256[] calldata availabilities
    ) private returns (uint256 total) {
        BitMaps.BitMap storage claimed = _claimed[licenseId];
        uint256 linkEpoch = epochAt(licenses.linkedAt(licenseId));
        uint256 current = currentEpoch();
        for (uint256 i = 0; i < epochs.length; i++) {
            uint256 epoch = epochs[i];
            if (availabilities[i] > MAX_AVAILABILITY) {
                revert AvailabilityOutOfRange(epoch, availabilities[i]);
            }
            if (epoch >= current) revert EpochNotEnded(epoch, current);
            if (epoch < linkEpoch) revert EpochBeforeLink(licenseId, epoch, linkEpoch);
            if (claimed.get(epoch)) revert EpochAlreadyClaimed(licenseId, epoch);
            claimed.set(epoch);
            total += availabilities[i];
        }
    }
}

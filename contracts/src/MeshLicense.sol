// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Enumerable} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721Enumerable.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {MeshToken} from "./MeshToken.sol";

/// @title MeshOps node licences
/// @notice ERC-721 licences, bought with tokens (burned) or minted by the owner, each linked to
/// at most one node's Ethereum address and each node address to at most one licence.
/// Linking needs the node's consent (its key signs the link), so nobody can attach someone
/// else's node to their licence and collect its availability rewards.
/// A linked licence cannot be transferred: unlink first.
contract MeshLicense is ERC721Enumerable, Ownable {
    MeshToken public immutable token;

    /// @notice Tokens burned by `buy`; 0 closes the sale.
    uint256 public price;

    uint256 private _nextId = 1;
    mapping(uint256 licenseId => address) private _nodeOf;
    mapping(address node => uint256) private _licenseOf;

    /// @notice When the licence was last linked (rewards pay epochs from then on).
    mapping(uint256 licenseId => uint256) public linkedAt;

    /// @notice Consumed by each link, so an old consent cannot be replayed after an unlink.
    mapping(address node => uint256) public linkNonce;

    event PriceSet(uint256 price);
    event LicenseBought(uint256 indexed licenseId, address indexed buyer, uint256 price);
    event Linked(uint256 indexed licenseId, address indexed node);
    event Unlinked(uint256 indexed licenseId, address indexed node);

    error SaleClosed();
    error NotLicenseOwner(uint256 licenseId, address caller);
    error InvalidNodeAddress(address node);
    error LicenseAlreadyLinked(uint256 licenseId, address node);
    error NodeAlreadyLinked(address node, uint256 licenseId);
    error LicenseNotLinked(uint256 licenseId);
    error NodeConsentInvalid(address node, address signer);
    error LicenseIsLinked(uint256 licenseId, address node);

    constructor(MeshToken token_, uint256 price_, address owner_)
        ERC721("MeshOps Node License", "MESHNODE")
        Ownable(owner_)
    {
        token = token_;
        price = price_;
        emit PriceSet(price_);
    }

    function setPrice(uint256 price_) external onlyOwner {
        price = price_;
        emit PriceSet(price_);
    }

    /// @notice Buy a licence: burns `price` tokens from the caller (approve this contract first).
    function buy() external returns (uint256 licenseId) {
        uint256 cost = price;
        if (cost == 0) revert SaleClosed();
        token.burnFrom(msg.sender, cost);
        licenseId = _mintNext(msg.sender);
        emit LicenseBought(licenseId, msg.sender, cost);
    }

    /// @notice Mint a licence for free (the network owner's allocation).
    function mint(address to) external onlyOwner returns (uint256 licenseId) {
        licenseId = _mintNext(to);
    }

    /// @notice The digest a node signs (EIP-191) to consent to being linked to `licenseId`.
    function linkDigest(uint256 licenseId, address node) public view returns (bytes32) {
        return keccak256(
            abi.encodePacked(block.chainid, address(this), "link", licenseId, node, linkNonce[node])
        );
    }

    /// @notice Link the caller's licence to `node`, with the node's signature of `linkDigest`.
    function link(uint256 licenseId, address node, bytes calldata nodeSignature) external {
        _requireLicenseOwner(licenseId);
        if (node == address(0)) revert InvalidNodeAddress(node);
        address current = _nodeOf[licenseId];
        if (current != address(0)) revert LicenseAlreadyLinked(licenseId, current);
        uint256 other = _licenseOf[node];
        if (other != 0) revert NodeAlreadyLinked(node, other);
        bytes32 signed = MessageHashUtils.toEthSignedMessageHash(linkDigest(licenseId, node));
        (address signer,,) = ECDSA.tryRecoverCalldata(signed, nodeSignature);
        if (signer != node) revert NodeConsentInvalid(node, signer);
        linkNonce[node] += 1;
        _nodeOf[licenseId] = node;
        _licenseOf[node] = licenseId;
        linkedAt[licenseId] = block.timestamp;
        emit Linked(licenseId, node);
    }

    /// @notice Unlink the caller's licence from its node (the licence can then move).
    function unlink(uint256 licenseId) external {
        _requireLicenseOwner(licenseId);
        address node = _nodeOf[licenseId];
        if (node == address(0)) revert LicenseNotLinked(licenseId);
        delete _nodeOf[licenseId];
        delete _licenseOf[node];
        delete linkedAt[licenseId];
        emit Unlinked(licenseId, node);
    }

    /// @notice The node linked to `licenseId`, or the zero address.
    function nodeOf(uint256 licenseId) external view returns (address) {
        return _nodeOf[licenseId];
    }

    /// @notice The licence linked to `node`, or 0.
    function licenseOf(address node) external view returns (uint256) {
        return _licenseOf[node];
    }

    function _requireLicenseOwner(uint256 licenseId) private view {
        if (_requireOwned(licenseId) != msg.sender) revert NotLicenseOwner(licenseId, msg.sender);
    }

    function _mintNext(address to) private returns (uint256 licenseId) {
        licenseId = _nextId++;
        _mint(to, licenseId);
    }

    /// @dev Transfers of a linked licence are refused; mints are not transfers.
    function _update(address to, uint256 tokenId, address auth)
        internal
        override
        returns (address)
    {
        address node = _nodeOf[tokenId];
        if (node != address(0)) revert LicenseIsLinked(tokenId, node);
        return super._update(to, tokenId, auth);
    }
}
